"""Tiny random-weight stand-ins for the models scoretool uses, built offline.

Each builder writes an ordinary Hugging Face model folder (config, weights, generation
config, tokenizer and processor files) that loads with the usual
``XxxModel.from_pretrained(folder)`` / ``AutoProcessor.from_pretrained(folder)`` calls,
with ``HF_HUB_OFFLINE=1`` and nothing in the cache. The weights are random, so the output is
noise and nonsense words, but every shape, rate and special token matches the real
checkpoints, which is what tests of the pipeline need. Builders are seeded (same folder
contents every run) and take a second or two.

    python -m scoretool.testing make-tiny DIR    # writes DIR/musicgen, DIR/blip and DIR/chat
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SEED = 0

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


@contextmanager
def _seeded(seed: int = SEED) -> Iterator[None]:
    """Seed torch for reproducible random weights without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _save(folder: Path, model, processor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- MusicGen

# What makes the tiny model interchangeable with facebook/musicgen-small: 32 kHz mono
# audio, an EnCodec hop of 8*5*4*4 = 640 samples (50 frames/s) and 4 codebooks.
MUSICGEN_SAMPLING_RATE = 32_000
MUSICGEN_UPSAMPLING_RATIOS = (8, 5, 4, 4)
MUSICGEN_HOP_LENGTH = 640
MUSICGEN_FRAME_RATE = 50
MUSICGEN_NUM_CODEBOOKS = 4
# Real checkpoint: 2048 codes. Fewer keeps the decoder's 4 embeddings + 4 heads small.
MUSICGEN_CODEBOOK_SIZE = 64


def musicgen_new_tokens(frames: int) -> int:
    """``max_new_tokens`` that makes MusicGen generate exactly ``frames`` audio frames.

    MusicGen delays codebook k by k steps (the "delay pattern"), so with 4 codebooks the
    first 3 steps are only partly audio and are dropped, along with the decoder start
    token, when generate() undoes the delay: ``frames + 3`` new tokens give ``frames``
    frames, i.e. ``frames * 640`` samples at 32 kHz (the same as musicgen-small). Example:
    30 s = 1500 frames -> ``max_new_tokens=1503`` -> 960000 samples.

    This holds for ``frames >= 3``. transformers skips the delay pattern when the whole
    sequence (start token + new tokens) is shorter than ``2 * 4 - 1 = 7``, and then every
    new token is a frame: ``max_new_tokens`` 1..5 give 1..5 frames, 6 gives 3.
    """
    if frames < 3:
        raise ValueError(f"MusicGen can't be asked for fewer than 3 frames this way, got {frames}")
    return frames + MUSICGEN_NUM_CODEBOOKS - 1


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


def _musicgen_tokenizer():
    from transformers import T5Tokenizer

    # T5Tokenizer(vocab_file=...) silently ignores the file in transformers 5: pass pieces.
    vocab = _sentencepiece_vocab(CORPUS.splitlines(), vocab_size=600)
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def make_tiny_musicgen(directory: str | Path) -> Path:
    """Write a tiny random MusicGen (model + MusicgenProcessor) to ``directory``."""
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    tokenizer = _musicgen_tokenizer()
    text_encoder = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    # EnCodec uses num_quantizers = 1000 * max(target_bandwidths) // (frame_rate * bits per
    # code); pick the bandwidth that gives exactly 4 codebooks (musicgen-small: 2.2 kbps
    # with 2048 codes = 11 bits; here 4 * 50 * 6 bits = 1.2 kbps).
    bits_per_code = (MUSICGEN_CODEBOOK_SIZE - 1).bit_length()
    bandwidth_kbps = MUSICGEN_NUM_CODEBOOKS * MUSICGEN_FRAME_RATE * bits_per_code / 1000
    audio_encoder = EncodecConfig(
        sampling_rate=MUSICGEN_SAMPLING_RATE,
        audio_channels=1,
        upsampling_ratios=list(MUSICGEN_UPSAMPLING_RATIOS),
        target_bandwidths=[bandwidth_kbps],
        codebook_size=MUSICGEN_CODEBOOK_SIZE,
        hidden_size=16,
        num_filters=2,  # the least that builds (compress=2 halves it); decode time scales with it
        num_lstm_layers=1,
        use_causal_conv=False,  # as in musicgen-small
        normalize=False,
    )
    # Codes run 0..codebook_size-1; the one extra embedding row, id codebook_size, is
    # MusicGen's start/pad token (2048 in musicgen-small).
    special = MUSICGEN_CODEBOOK_SIZE
    decoder = MusicgenDecoderConfig(
        vocab_size=MUSICGEN_CODEBOOK_SIZE,
        num_codebooks=MUSICGEN_NUM_CODEBOOKS,
        audio_channels=1,
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=2048,
        dropout=0.0,
        pad_token_id=special,
        bos_token_id=special,
        decoder_start_token_id=special,
    )
    # transformers 5 dropped MusicgenConfig.from_sub_models_config: pass the sub-configs.
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    assert config.audio_encoder.num_quantizers == MUSICGEN_NUM_CODEBOOKS
    assert config.audio_encoder.hop_length == MUSICGEN_HOP_LENGTH

    with _seeded():
        model = MusicgenForConditionalGeneration(config).eval()
        _make_codec_audible(model.audio_encoder)
    # As musicgen-small's generation_config.json (max_length 1500: 1496 frames, ~30 s).
    model.generation_config = GenerationConfig(
        decoder_start_token_id=special,
        bos_token_id=special,
        pad_token_id=special,
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
    )
    feature_extractor = EncodecFeatureExtractor(
        feature_size=1,
        sampling_rate=MUSICGEN_SAMPLING_RATE,
        padding_side="left",
        return_attention_mask=True,
    )
    processor = MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return _save(Path(directory), model, processor)


def _make_codec_audible(encodec, rms: float = 0.1) -> None:
    """Make a random EnCodec decode codes into zero-mean audio of a sane loudness.

    Out of the box it would decode every code sequence to the same signal: codebooks start
    as zeros (real ones come from a checkpoint), and a random decoder adds a large DC offset
    from its biases while shrinking whatever the codes carry. So: random codebooks, no
    biases, and the last (linear) conv scaled so that random codes come out at ``rms``
    (0.1 ~ -20 dBFS).
    """
    with torch.no_grad():
        for layer in encodec.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.normal_()
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
        for name, param in encodec.decoder.named_parameters():
            if "bias" in name:
                param.zero_()
        config = encodec.config
        codes = torch.randint(config.codebook_size, (1, 1, config.num_quantizers, 50))
        audio = encodec.decode(codes, [None]).audio_values
        gain = encodec.decoder.layers[-1].conv.parametrizations.weight.original0  # weight-norm g
        gain.mul_(rms / audio.std())


# --------------------------------------------------------------------------- BLIP

BLIP_IMAGE_SIZE = 32
# Weight init std for the whole BLIP. The defaults (0.02 text, 1e-10 vision!) make a tiny
# model's caption ignore the image: every picture would get the same words. At 0.1
# different images get different captions, which tests of per-scene captions can see.
BLIP_INIT_STD = 0.1
# BERT's specials in BERT's order, then the two BLIP adds: [DEC], the bos token its
# captioner starts decoding from, and [ENC] (unused by captioning, but in the real vocab).
BLIP_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]")


def _blip_tokenizer():
    from transformers import BertTokenizer

    words = sorted(set(re.findall(r"[a-z]+", CORPUS.lower())))
    vocab = {token: i for i, token in enumerate([*BLIP_SPECIAL_TOKENS, *words])}
    return BertTokenizer(
        vocab=vocab,
        bos_token="[DEC]",
        additional_special_tokens=["[ENC]"],
        model_max_length=512,
    )


def make_tiny_blip(directory: str | Path) -> Path:
    """Write a tiny random BLIP captioner (model + BlipProcessor) to ``directory``."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )

    tokenizer = _blip_tokenizer()
    text_config = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,  # [DEC]: what BLIP's generate() starts from
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,  # generate() stops on sep_token_id
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=BLIP_INIT_STD,
    )
    vision_config = BlipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=BLIP_IMAGE_SIZE,
        patch_size=8,
        initializer_range=BLIP_INIT_STD,
    )
    config = BlipConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=32,
        image_text_hidden_size=32,
        initializer_range=BLIP_INIT_STD,
    )
    with _seeded():
        model = BlipForConditionalGeneration(config).eval()
        _never_emit(model, [tokenizer.convert_tokens_to_ids(t) for t in BLIP_SPECIAL_TOKENS])

    size = {"height": BLIP_IMAGE_SIZE, "width": BLIP_IMAGE_SIZE}
    image_processor = BlipImageProcessorPil(size=size)  # the PIL one: no torchvision needed
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _save(Path(directory), model, processor)


def _never_emit(model, token_ids: list[int]) -> None:
    """Push the LM-head bias of ``token_ids`` far down so captions are all words.

    A random model rates [SEP] like any word, so greedy decoding would sometimes stop at
    once (empty caption) or emit other specials that skip_special_tokens then drops.
    Banning them all means every caption is ``max_new_tokens`` vocabulary words. (Setting
    ``min_new_tokens`` in generation_config.json would not help: BLIP's generate() runs
    its text decoder, which doesn't read the saved generation config.)
    """
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[token_ids] = -1e4


# --------------------------------------------------------------------------- chat LLM

# ChatML, as Qwen2 and many small instruct models use it: the `local` bridge backend only
# needs a tokenizer with a chat template and a causal LM that stops on the end-of-turn token.
# As for BLIP: at the default init std (0.02) a tiny model says the same thing to everything.
CHAT_INIT_STD = 0.2
CHAT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _chat_tokenizer():
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


def make_tiny_chat(directory: str | Path) -> Path:
    """Write a tiny random chat LLM (Qwen2ForCausalLM + a ChatML tokenizer) to ``directory``.

    It answers every chat with the same kind of word salad: what tests of the `local` bridge
    need to see the whole path run (chat template, generate, decode) and its answers rejected.
    """
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _chat_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        initializer_range=CHAT_INIT_STD,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with _seeded():
        model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64
    )
    return _save(Path(directory), model, tokenizer)


# --------------------------------------------------------------------------- all / CLI

# name -> builder; make_tiny and the CLI build each into DIR/<name>.
BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "musicgen": make_tiny_musicgen,
    "blip": make_tiny_blip,
    "chat": make_tiny_chat,
}


def make_tiny(directory: str | Path) -> dict[str, Path]:
    """Build every tiny model into ``directory/<name>``; return ``{name: folder}``."""
    root = Path(directory)
    return {name: build(root / name) for name, build in BUILDERS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoretool.testing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-tiny", help="write tiny random models for tests into DIR")
    make.add_argument("directory", type=Path, metavar="DIR")
    args = parser.parse_args(argv)

    for name, folder in make_tiny(args.directory).items():
        print(f"{name}\t{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
