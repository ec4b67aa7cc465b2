"""The tiny models' tokenizers, trained in memory on one small corpus (seconds, no downloads).

Each follows its real model's conventions (special tokens, their ids), so the tokenizers also
serve real-shape random-weight models (benchmarks/shapes.py) whose vocabularies are larger.
"""

from __future__ import annotations

import io
import re

# A small corpus of prompt-like and caption-like English. It trains the MusicGen
# SentencePiece tokenizer and provides the BLIP word vocabulary, so both tokenizers
# handle the kind of text scoretool feeds them without turning everything into <unk>.
# The last lines are there so that capitals, digits and punctuation get pieces too.
CORPUS = """\
upbeat pop with bright synths and drums at 120 bpm
a dog running on the beach
calm piano melody for a quiet morning
epic orchestral score with strings and brass
a man walking down a busy city street at night
lofi hip hop beat with soft vinyl crackle
a woman riding a bicycle through the park
dark ambient drone with deep bass and slow pulses
two children playing football on a green field
energetic rock song with electric guitar and loud drums
a cat sleeping on a wooden table
gentle acoustic guitar with warm folk vocals
a car driving along a mountain road in the rain
tense cinematic music for a chase scene
a group of people dancing at a party
relaxing jazz with a smooth saxophone solo
a boat sailing on a calm blue lake
happy ukulele tune with hand claps and whistling
a bird flying over the ocean at sunset
sad violin theme in a minor key
a chef cooking food in a small kitchen
retro synthwave with pulsing arpeggios at 100 bpm
snow falling on a quiet forest
funky bass groove with tight drums and horns
a crowd cheering in a large stadium
dreamy electronic pads with a slow build
an old man reading a book by the window
fast drum and bass with heavy sub bass
a train passing through the countryside
playful marimba melody for a cartoon
a couple walking hand in hand on the sand
heroic fanfare with trumpets and timpani
a horse running across an open field
minimal techno with a steady kick drum
waves crashing against the rocks
soft lullaby with music box and bells
a skateboarder doing tricks in a skate park
country song with banjo and fiddle
a city skyline with tall buildings and lights
mysterious music with pizzicato strings and harp
a young girl blowing out candles on a birthday cake
uplifting corporate music with piano and claps
fireworks exploding in the night sky
slow blues with a crying guitar
a hiker standing on top of a mountain
latin rhythm with congas and bright brass
people sitting at tables in a busy cafe
spooky halloween music with organ and choir
a surfer riding a big wave
chill house music with a deep groove at 122 bpm
a small plane taking off from a runway
medieval tavern music with lute and flute
a family eating dinner together at home
aggressive metal riff with double kick drums
leaves blowing in the wind in autumn
sweet romantic ballad with strings and piano
a basketball player jumping to the net
reggae groove with offbeat guitar and organ
a red sports car parked on the street
ambient nature sounds with soft synth pads
a baby laughing in a bright room
marching band with snare drums and tubas
clouds moving over green hills
video game chiptune with fast square waves
a person typing on a laptop in an office
triumphant epic music for a final battle
rain drops on a window at night
bossa nova with nylon guitar and light percussion
a fisherman standing on a wooden pier
dubstep drop with wobble bass and big drums
a bright kitchen with white walls and plants
cheerful whistling melody with acoustic guitar
a dog catching a ball in the garden
suspense music with low strings and ticking clock
students sitting in a classroom listening
tropical house with steel drums and warm synths
a road through the desert under a blue sky
solo cello playing a slow and sad melody
kids splashing water in a swimming pool
disco track with funky guitar and strings
a man playing guitar on a stage with lights
calm meditation music with singing bowls
a busy market with fruit and vegetables
grand piano playing a fast classical piece
a dark room lit by a single candle
indie rock with jangly guitars and a catchy chorus
a plate of pasta on a restaurant table
trap beat with hard hi hats and deep bass
a woman singing into a microphone
folk dance music with accordion and fiddle
an airplane flying above the clouds
peaceful harp music for a fairy tale
two dogs playing in the snow
driving electronic music for a sports video
a girl painting a picture in a studio
warm soul music with organ and backing vocals
the sun rising over a quiet village
intense action music with pounding percussion
a couple dancing slowly in the kitchen
gentle rain and distant thunder with soft piano
Upbeat Pop, 128 BPM: bright synths & punchy drums!
A quiet scene (0:00-0:45) with soft piano; then strings.
Jazzy, warm and relaxed... think late-night radio?
Key of C# minor / 90 BPM / "sad" mood, 4/4 time
THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG
Vexed Zebras quickly jog with five wizards at 7 o'clock
"""


def _sentencepiece_vocab(sentences: list[str], vocab_size: int) -> list[tuple[str, float]]:
    """Train a unigram SentencePiece model in memory; return its (piece, score) list.

    Ids follow T5: <pad>=0, </s>=1, <unk>=2 (T5Tokenizer hard-codes unk_id=2), no BOS.
    """
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is small; take what it supports
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        # The saved tokenizer.json has no normalizer (we don't carry SentencePiece's
        # precompiled charsmap over), so train without one too: both then agree.
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def musicgen_tokenizer():
    from transformers import T5Tokenizer

    # T5Tokenizer(vocab_file=...) silently ignores the file in transformers 5: pass pieces.
    vocab = _sentencepiece_vocab(CORPUS.splitlines(), vocab_size=600)
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)



# BERT's specials in BERT's order, then the two BLIP adds: [DEC], the bos token its
# captioner starts decoding from, and [ENC] (unused by captioning, but in the real vocab).
BLIP_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]")


def blip_tokenizer():
    from transformers import BertTokenizer

    words = sorted(set(re.findall(r"[a-z]+", CORPUS.lower())))
    vocab = {token: i for i, token in enumerate([*BLIP_SPECIAL_TOKENS, *words])}
    return BertTokenizer(
        vocab=vocab,
        bos_token="[DEC]",
        additional_special_tokens=["[ENC]"],
        model_max_length=512,
    )



# ChatML, as Qwen2 and many small instruct models use it: the `local` bridge backend only
# needs a tokenizer with a chat template and a causal LM that stops on the end-of-turn token.
CHAT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_tokenizer():
    """A byte-level BPE trained in memory on CORPUS: any text encodes, nothing is <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=list(CHAT_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )

