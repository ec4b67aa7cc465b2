"""The kinds of footage the offline bridge knows, each with the music that belongs to it.

Plain data. A `Family` is found by its cue words in a caption (a word or a two-word phrase such as
"cell phone", with a weight: 3 for a word that settles it, "funeral"; 1 for a usual one; less for
one that only leans, "table"); the family with the heaviest cues wins. Its genre names no mood,
its moods all agree with each other (`lexicon.agree`) and with the tempo words of its BPM range,
and its first instrument is its signature. A family that `needs` a word ("city at night": night,
neon...) takes part only where one is in the caption, and then, being the more specific, counts
its cues 1.25 times. `DEFAULT` is for a caption with no cue at all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class Family:
    name: str
    cues: dict[str, float]  # cue word or two-word phrase -> weight
    genre: str
    moods: tuple[str, ...]  # the palette; the first is the family's character
    instruments: tuple[str, ...]  # the first is the signature; one of the others joins it
    bpm: tuple[int, int]  # the tempo range
    needs: frozenset[str] = frozenset()  # one of these must be in the caption too ("city at night")


WEIGHTS = {"strong": 3.0, "plain": 1.0, "weak": 0.5, "faint": 0.3}


def cues(**tiers: str) -> dict[str, float]:
    """Cue words by tier (`strong="funeral coffin"`); an underscore joins a phrase (`cell_phone`)."""
    return {w.replace("_", " "): WEIGHTS[tier] for tier, text in tiers.items() for w in text.split()}


CITY = (
    "city street streets building buildings traffic skyline bus taxi downtown crowd subway car cars sidewalk "
    "crosswalk intersection skyscraper skyscrapers bridge storefront"
)

FAMILIES: tuple[Family, ...] = (
    Family("ceremony", cues(strong="wedding bride groom ceremony graduation graduate graduates diploma vows altar bouquet "
                                   "wedding_cake wedding_dress",
                            plain="gown veil tuxedo award podium"),
           "chamber orchestral", ("graceful", "tender", "romantic", "elegant", "hopeful"),
           ("string quartet", "harp", "piano", "french horns"), (72, 92)),
    Family("celebration", cues(strong="party birthday balloon balloons confetti fireworks festival carnival celebration "
                                      "celebrating champagne birthday_cake new_year nightclub disco",
                               plain="dancing dance toast cheering club"),
           "dance pop", ("joyful", "festive", "euphoric", "bouncy", "sparkling"),
           ("bright synths", "handclaps", "punchy bass", "brass stabs"), (116, 128)),
    Family("performance", cues(strong="concert stage band singer guitarist drummer musician on_stage",
                               plain="microphone guitar singing audience drums"),
           "indie rock", ("energetic", "bold", "electric", "confident"),
           ("electric guitars", "live drums", "electric bass", "hammond organ"), (112, 130)),
    Family("sport", cues(strong="soccer football basketball tennis baseball hockey volleyball golf rugby stadium athlete "
                                "skateboard skateboarder surfboard surfer skier skiing skating surfing snowboard snowboarder "
                                "snowboarding marathon cyclist mountain_bike",
                         plain="player players ball runner race racing jersey team goal racket frisbee gym workout boxing "
                               "court track slope slopes",
                         weak="game bike bicycle"),
           "stadium rock", ("energetic", "driving", "triumphant", "determined", "bold"),
           ("overdriven guitars", "pounding drums", "synth bass", "handclaps"), (128, 148)),
    Family("products", cues(strong="smartphone iphone cell_phone headphones earbuds gadget smartwatch smart_watch "
                                   "white_background product tablet ipad wristwatch remote_control",
                            plain="phone camera lens speaker watch laptop device sneaker sneakers perfume",
                            weak="bottle box keyboard computer screen"),
           "minimal electronic", ("sleek", "confident", "curious", "sparkling"),
           ("plucked synths", "glass marimba", "sub bass", "soft kick drum"), (100, 115)),
    Family("work", cues(strong="office meeting conference presentation business businessman businesswoman coworkers "
                               "whiteboard conference_room",
                        plain="desk laptop computer suit typing paperwork documents interview",
                        weak="tie chair"),
           "corporate pop", ("focused", "confident", "hopeful", "curious"),
           ("piano", "plucked synths", "marimba", "soft kick drum"), (100, 114)),
    Family("industry", cues(strong="factory construction welding welder warehouse forklift crane machinery hard_hat "
                                   "workshop assembly_line",
                            plain="worker workers tools drill hammer metal steel engineer",
                            weak="machine"),
           "industrial cinematic", ("determined", "driving", "bold", "focused"),
           ("metallic percussion", "low strings", "taiko drums", "synth bass"), (100, 124)),
    Family("kids", cues(strong="baby toddler playground toy toys teddy_bear crib little_girl little_boy young_boy "
                               "young_girl sandbox",
                        plain="child children kid kids swing slide bubbles crayons classroom",
                        weak="boy girl"),
           "children's pop", ("playful", "cheerful", "bouncy", "carefree", "wholesome"),
           ("ukulele", "glockenspiel", "toy piano", "pizzicato strings"), (96, 124)),
    Family("animals", cues(plain="dog puppy cat kitten bird rabbit bunny llama squirrel fox duck chicken owl tabby "
                                 "hamster parrot pet animal animals"),
           "storybook orchestral", ("playful", "curious", "whimsical", "cheerful"),
           ("pizzicato strings", "clarinet", "glockenspiel", "flute"), (96, 112)),
    Family("wildlife", cues(strong="elephant elephants giraffe giraffes zebra zebras lion tiger safari wildlife leopard "
                                   "cheetah gorilla rhino hippo",
                            plain="bear wolf deer herd monkey eagle"),
           "documentary orchestral", ("majestic", "awestruck", "expansive", "curious"),
           ("french horns", "low strings", "timpani", "kalimba"), (86, 104)),
    Family("nature", cues(plain="meadow field grass grassy flower flowers hill hills countryside farm garden butterfly "
                                "tree trees valley park orchard forest woods jungle moss fern trail mountain mountains "
                                "landscape waterfall river stream creek leaves",
                          weak="sky clouds rock rocks path horse sheep cow"),
           "pastoral orchestral", ("serene", "peaceful", "airy", "tranquil", "dreamy"),
           ("strings", "flute", "harp", "oboe", "acoustic guitar"), (72, 95)),
    Family("sea", cues(plain="ocean sea beach wave waves surf shore island harbor harbour boat sailboat lake pond canal "
                             "underwater coral dock pier lighthouse",
                       weak="water fish"),
           "coastal ambient", ("calm", "serene", "airy", "dreamy"),
           ("felt piano", "warm pads", "soft strings", "marimba"), (70, 92)),
    Family("winter", cues(strong="snow snowy glacier blizzard snowman snowflakes",
                          plain="ice icy frost frozen winter"),
           "cinematic ambient", ("hushed", "crystalline", "serene", "tranquil"),
           ("celesta", "strings", "piano", "bowed vibraphone"), (64, 84)),
    Family("desert", cues(strong="desert canyon dune dunes cactus prairie",
                          plain="sand ranch cowboy"),
           "americana", ("expansive", "carefree", "reflective"),
           ("slide guitar", "harmonica", "kick drum", "banjo"), (92, 108)),
    Family("travel", cues(strong="airport suitcase luggage passport backpack backpacker tourist tourists road_trip "
                                 "hot_air travel traveler",
                          plain="airplane plane train station railway highway road map hotel camper sightseeing "
                                "landmark helicopter"),
           "indie folk", ("adventurous", "hopeful", "carefree", "curious"),
           ("acoustic guitar", "handclaps", "glockenspiel", "upright piano"), (100, 120)),
    Family("city at night", cues(plain=CITY, strong="nightlife neon_sign city_lights"),
           "synthwave", ("brooding", "cool", "hypnotic", "mysterious"),
           ("analog synths", "gated drums", "deep bass", "electric piano"), (88, 108),
           needs=frozenset("night nighttime neon lights lit evening dark".split())),
    Family("city", cues(plain=CITY, weak="market"),
           "urban electronic", ("bustling", "restless", "confident", "cool"),
           ("drum machine", "synth bass", "electric guitar", "electric piano"), (104, 122)),
    Family("grief", cues(strong="funeral coffin casket grave graves graveyard cemetery tombstone tombstones headstone "
                                "gravestone mourners mourning memorial hearse wreath burial urn",
                         plain="crying tears", weak="candle candles"),
           "neoclassical", ("mournful", "somber", "elegiac", "solemn", "wistful"),
           ("solo cello", "felt piano", "string quartet", "soft choir"), (56, 70)),
    Family("horror", cues(strong="ghost skull skeleton zombie monster haunted creepy horror scary demon vampire witch "
                                 "blood bloody",
                          plain="spider cobweb abandoned", weak="doll mask clown"),
           "dark ambient", ("eerie", "ominous", "tense", "menacing", "chilling"),
           ("dissonant strings", "prepared piano", "bowed cymbals", "low brass"), (76, 94)),
    Family("food", cues(strong="pizza cake dessert kitchen cooking chef restaurant sandwich burger salad soup pasta "
                               "sushi steak donut donuts doughnut cookies bakery hot_dog ice_cream espresso latte",
                        plain="coffee cup mug food plate dinner lunch breakfast meal bowl fruit vegetables bread cheese "
                              "wine cocktail tea eating saucer",
                        weak="table counter spoon fork knife"),
           "lounge jazz", ("cozy", "warm", "relaxed", "elegant"),
           ("piano", "upright bass", "brushed drums", "vibraphone"), (84, 104)),
    Family("gaming", cues(strong="video_game game_controller controller joystick gamer gaming console playstation xbox "
                                 "nintendo arcade esports computer_game",
                          weak="game"),
           "chiptune", ("energetic", "playful", "bold", "electric"),
           ("square-wave synths", "chip drums", "pulse bass", "arcade bells"), (120, 140)),
    Family("heritage", cues(plain="ruins ruin castle church abbey cathedral arch arches stone temple monument tower "
                                  "palace statue museum monastery chapel fortress pyramid"),
           "choral orchestral", ("solemn", "timeless", "reflective", "hushed"),
           ("choir", "low strings", "french horns", "church organ"), (62, 78)),
    Family("space", cues(strong="space astronaut rocket planet spaceship galaxy satellite telescope hologram laboratory "
                                "scientist microscope futuristic cyborg android alien space_suit control_room",
                         plain="robot robotic stars moon", weak="screens monitor monitors"),
           "cinematic electronic", ("awestruck", "curious", "mysterious", "hypnotic"),
           ("analog synths", "pulsing bass", "swelling strings", "glassy celesta"), (96, 112)),
    Family("action", cues(strong="explosion chase fight fighting police soldier soldiers army war tank gun weapon battle "
                                 "firefighter fire_truck race_car",
                          plain="fire flames motorcycle", weak="smoke"),
           "hybrid orchestral", ("intense", "urgent", "driving", "bold"),
           ("taiko drums", "staccato strings", "brass hits", "distorted synth bass"), (128, 150)),
    Family("romance", cues(strong="kiss kissing hugging embrace valentine proposal holding_hands engagement_ring",
                           plain="couple roses heart candlelight hug"),
           "acoustic ballad", ("romantic", "tender", "intimate", "warm"),
           ("felt piano", "nylon guitar", "soft strings", "cello"), (66, 84)),
    Family("wellness", cues(strong="yoga meditation meditating spa massage", weak="mat zen"),
           "ambient", ("calm", "serene", "relaxed", "peaceful"),
           ("kalimba", "warm pads", "soft bells", "handpan"), (60, 76)),
    Family("titles", cues(weak="title text sign logo letters words poster presents"),
           "cinematic orchestral", ("grand", "hopeful", "curious"),
           ("brass", "timpani", "strings", "piano"), (88, 104)),
    # BLIP says "looking at the camera" of a portrait: the phrase keeps the camera out of "products".
    Family("portrait", cues(strong="selfie headshot", plain="the_camera beard mustache posing portrait",
                            faint="man woman person people face lady guy family friends"),
           "chamber pop", ("reflective", "intimate", "warm", "nostalgic"),
           ("felt piano", "acoustic guitar", "cello", "soft pads"), (80, 98)),
)

DEFAULT = Family("default", {}, "cinematic ambient", ("reflective", "curious", "hopeful"),
                 ("piano", "soft pads", "strings", "cello"), (84, 96))
