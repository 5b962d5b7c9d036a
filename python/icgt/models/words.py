"""The concept words: the protocol's 30, the day names, spare nouns, and each built-in model's defaults.

Plain tuples with no dependencies, so that configs, tokens and reports can share them.

>>> from icgt.models.words import PROTOCOL_WORDS
>>> PROTOCOL_WORDS[:4], len(PROTOCOL_WORDS)
(('apple', 'bird', 'car', 'egg'), 30)
"""

from __future__ import annotations

from .catalog import BUILTIN_MODELS

#: The protocol's 30 concept words, in the authors' order (first 16: the grid; first 10: the ring).
PROTOCOL_WORDS = (
    "apple", "bird", "car", "egg", "house", "milk", "plane", "opera", "box", "sand",
    "sun", "mango", "rock", "math", "code", "phone", "tree", "dog", "metal", "water",
    "fire", "boat", "mouse", "cup", "book", "paper", "key", "tea", "shoe", "ball",
)

#: The semantic-conflict experiment's words, in weekly order (the ring it is placed on permutes them).
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: Plain English nouns, none of them a protocol word, to stand in for words a tokenizer splits.
SPARE_NOUNS = (
    "cat", "fish", "door", "lamp", "hat", "bed", "bread", "chair", "table", "horse",
    "cake", "rice", "coat", "ring", "star", "moon", "road", "salt", "wall", "bell",
    "drum", "coin", "corn", "bag", "pen", "desk", "nut", "leaf", "wolf", "bear",
)

#: Default concept words per built-in model. None of the 30 protocol words splits for any of their
#: tokenizers (docs/models.md), so all keep the protocol list unchanged.
DEFAULT_WORDS = {name: PROTOCOL_WORDS for name in BUILTIN_MODELS}
