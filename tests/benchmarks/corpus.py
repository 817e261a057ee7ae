"""A deterministic synthetic corpus of serial fiction for benchmarks.

Prose with dialogue, author's notes, chapter warnings, footnotes and scene
breaks; the same words every time for the same arguments. Chapters are dated
one a day from 1990, so that every one is published whatever today's date
(up to about 13,000 chapters a story) and no build needs `--future`.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

WORDS = ("the lighthouse keeper said nothing for a long while and then the tide turned against the "
         "causeway where salt had eaten the iron rail she remembered her mother's hands on the chart "
         "every map is wrong somewhere but this one was wrong on purpose and they both knew it "
         "radio static hissed like rain across the bay while gulls argued over the harbour wall").split()
NAMES = ("Tamsin", "Ruth", "Hollis", "Ione", "Marek", "Odile")
START = date(1990, 1, 1)


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        return f'"{text}," {rng.choice(NAMES)} said. "{rng.choice(WORDS).capitalize()} -- of course..."'
    if rng.random() < 0.1:
        return f"{text} --- *{rng.choice(WORDS)}*."
    return text + "."


def chapter_text(rng: random.Random, words: int) -> str:
    paragraphs: list[str] = []
    count = 0
    footnotes = 0
    while count < words:
        if paragraphs and rng.random() < 0.04:
            paragraphs.append("* * *")
        para = " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))
        if rng.random() < 0.05 and footnotes < 3:
            footnotes += 1
            para += f"[^{footnotes}]"
        paragraphs.append(para)
        count += len(para.split())
    paragraphs += [f"[^{n}]: {sentence(rng)}" for n in range(1, footnotes + 1)]
    return "\n\n".join(paragraphs) + "\n"


def generate(root: Path, stories: int, chapters: int, words: int, seed: int = 1) -> Path:
    """Write `site.toml` and `content/` for `stories` × `chapters` chapters of about `words` words."""
    rng = random.Random(seed)
    (root / "content").mkdir(parents=True, exist_ok=True)
    (root / "site.toml").write_text('title = "Benchmark"\nauthor = "Bench"\n'
                                    'base_url = "https://example.org/bench/"\n', "utf-8")
    for s in range(1, stories + 1):
        folder = root / "content" / f"story-{s:03d}"
        folder.mkdir(exist_ok=True)
        (folder / "story.md").write_text(
            "---\n"
            f"title: Story {s}\nrating: Teen And Up Audiences\n"
            "warnings: [Graphic Depictions Of Violence, Shipwrecks]\n"
            f"fandoms: [Original Work]\ncharacters: [{', '.join(rng.sample(NAMES, 3))}]\n"
            f"tags: [Tag {s % 7}, Slow Burn, Lighthouses]\nstatus: ongoing\n"
            "notes_before: |\n  Updates weekly.\n"
            "---\n" + sentence(rng) + " " + sentence(rng) + "\n", "utf-8")
        for c in range(1, chapters + 1):
            front = [f"title: Chapter title {c}", f"date: {START + timedelta(days=c)}"]
            if rng.random() < 0.3:
                front.append(f"notes_before: |\n  {sentence(rng)}")
            if rng.random() < 0.3:
                front.append(f"notes_after: |\n  {sentence(rng)}")
            if rng.random() < 0.1:
                front.append("warnings: [Blood]")
            (folder / f"{c:04d}-chapter.md").write_text(
                "---\n" + "\n".join(front) + "\n---\n" + chapter_text(rng, words), "utf-8")
    return root
