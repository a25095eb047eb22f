"""PTB-XL's free-text reports in English: an offline, deterministic translator driven by a curated phrase table.

PTB-XL's `report` column is free text written by ECG machines and cardiologists: German for most records
("sinusrhythmus lagetyp normal qrs(t) abnorm inferiorer infarkt alter unbest. 4.46 unbestätigter bericht"), English
for many ("sinus rhythm. normal ecg."), a few in Swedish ("sinusrytm vänster el-axel"). `translate` turns one report
into English with the phrase table data/report_glossary.tsv (shipped inside the package):

- Normalisation: Unicode NFC, lower case (PTB-XL's English reports are lower case; "unbestÄtigter" -> "unbestätigter"),
  runs of white space collapsed to one space.
- Tokens: words (with inner hyphens, slashes, brackets and apostrophes: "qrs(t)", "a-v", "vorhofflimmern/-flattern"),
  abbreviations with dots that the table lists ("unbest.", "st.n."), lead lists ("v4,5,6", "v3-4-5-6", "v2-v6"),
  numbers ("100", "11:7:92") and punctuation.
- Line breaks: a word that the report's source broke across a line with "- " is rejoined before tokenising, when the
  rejoined word is a word of the table: without the hyphen if that is one ("rechtsschen- kelblock" ->
  "rechtsschenkelblock", "vorder- wand" -> "vorderwand"), else with it ("t- veraenderungen" -> "t-veraenderungen",
  "vorhofs- es" -> "vorhofs-es"). Every other "- " stays: a suspended compound ("myokard- oder perikardschaden"), a
  dash or a minus ("v1 - v4"), a break the table does not know.
- Matching: the longest phrase of the table that starts at a token wins, then the next token is tried. Keys are
  compared in a folded spelling: ä/ö/ü/ß and ae/oe/ue/ss are the same ("ueberdrehter" = "überdrehter"); a "#" that
  stands for a lost umlaut ("f#r", "#bergang") is read as ü, ä or ö, whichever gives a word of the table.
- English passes through unchanged: the table's "=" entries are English words, kept as they are (and counted as
  English); lead names and numbers are kept as they are. A report with no German or Swedish word in it comes out as its
  normalised self.
- Unknown words are kept in the output as they are and counted (`Translation.unknown`), never dropped.
- Two documented drops, counted apart (`Translation.dropped`): the machine's version tag (a number of the form d.dd
  such as "4.46" right before "unbestätigter bericht", no clinical meaning) and everything from "edit:" on (the
  validating cardiologist's label edits in SCP codes, "Edit: IMI 15, CRBBB, (IMI 15)": the record's labels, not its
  report text; keeping them would leak the evaluation's labels into the text).

`coverage` sums the counts over many reports: the shares of word tokens translated, already English, unknown and
dropped, and the most frequent unknown words.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .errors import ReportError

GLOSSARY = "report_glossary.tsv"   # in ecgalign/data/
ENGLISH = "="                      # a table entry whose English is "=" is an English word, kept unchanged
VERSION_TAG = re.compile(r"\d\.\d\d")          # the machine's program version, e.g. 4.46
EDIT = re.compile(r"\bedit:")                  # start of the cardiologist's label edits
LEAD = re.compile(r"(?:i|ii|iii|avl|avr|avf|v[1-9](?:[,\-]v?[1-9])*)")
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
# a word starts with a letter (or a "#" for a lost umlaut); inside: letters, digits, - / ' + and short bracketed
# endings such as qrs(t), extrasystole(n), contraction(s)
WORD = re.compile(r"(?:[^\W\d_]|#)(?:[\w#\-/'+]|\([^\W\d_]{1,3}\))*")
# a line break inside a word: two runs of letters (or "#") around "- "
BROKEN = re.compile(r"((?:[^\W\d_]|#)+)- ((?:[^\W\d_]|#)+)")
PUNCT_CLOSE = set(".,;:!?)")
FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e"})
TOP_UNKNOWN = 30


def fold(word: str) -> str:
    """The spelling keys are compared in: umlauts and ß written out (ä -> ae, ...)."""
    return word.translate(FOLD)


@dataclass
class Translation:
    text: str                                            # the English report
    translated: int = 0                                  # word tokens translated by the table
    english: int = 0                                     # word tokens already English (or lead names), kept
    unknown: Counter = field(default_factory=Counter)    # unknown word -> count (kept in `text`)
    dropped: int = 0                                     # word tokens of an "edit:" annotation, dropped
    version_tags: int = 0                                # version tags ("4.46") dropped

    @property
    def n_words(self) -> int:
        return self.translated + self.english + sum(self.unknown.values()) + self.dropped


def _is_abbreviation(chunk: str) -> bool:
    """A key's chunk with a dot and a letter ("unbest.", "st.n.") is one token: an abbreviation."""
    return "." in chunk and any(c.isalpha() for c in chunk)


@lru_cache(maxsize=4)
def load_glossary(text: str | None = None) -> tuple[dict[tuple[str, ...], str], int, frozenset]:
    """The phrase table: {folded key tokens: English or "="}, the longest key length (in tokens) and the
    abbreviations with dots that the keys use.

    `text` is the TSV itself (default: the packaged data/report_glossary.tsv): lines `phrase<TAB>english`, `#` starts
    a comment line. The phrase is tokenised like a report, except that a chunk with a dot and a letter is one token
    (an abbreviation): "alter unbest." is a key of 2 tokens, "st & t abnorm," one of 5. A phrase listed twice is an
    error (two translations of one phrase cannot both be meant)."""
    if text is None:
        text = resources.files("ecgalign").joinpath("data", GLOSSARY).read_text(encoding="utf-8")
    table: dict[tuple[str, ...], str] = {}
    dotted: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{GLOSSARY} line {n}: {line!r} is not `phrase<TAB>english`")
        phrase = normalise(parts[0])
        abbreviations = frozenset(c for c in phrase.split(" ") if _is_abbreviation(c))
        dotted |= abbreviations
        key = tuple(fold(t) for _, t in _tokens(phrase, abbreviations))
        if key in table:
            raise ValueError(f"{GLOSSARY} line {n}: phrase {parts[0]!r} is listed twice")
        table[key] = parts[1].strip()
    return table, max(map(len, table), default=1), frozenset(dotted)


def normalise(report: str) -> str:
    """NFC, lower case, white space collapsed."""
    return " ".join(unicodedata.normalize("NFC", report).lower().split())


def _tokens(text: str, abbreviations=frozenset()) -> list[tuple[str, str]]:
    """(kind, token) pairs, kind in word/lead/number/punct: see the module docstring."""
    out = []
    for chunk in text.split(" "):
        if chunk in abbreviations:
            out.append(("word", chunk))
            continue
        i = 0
        while i < len(chunk):
            rest = chunk[i:]
            if (m := LEAD.match(rest)) and (m.end() == len(rest) or not rest[m.end()].isalnum()) \
                    and (i == 0 or not chunk[i - 1].isalnum()):
                out.append(("lead", m.group()))
            elif m := NUMBER.match(rest):
                out.append(("number", m.group()))
            elif m := WORD.match(rest):
                word = m.group()
                # an abbreviation with a dot ("unbest.", "st.n."): the longest listed prefix of the chunk's rest
                dotted = [a for a in abbreviations if rest.startswith(a) and len(a) > len(word)]
                if dotted:
                    word = max(dotted, key=len)
                out.append(("word", word))
                i += len(word)
                continue
            else:
                out.append(("punct", rest[0]))
                i += 1
                continue
            i += m.end()
    return out


def _resolve_hash(word: str, table) -> str:
    """A word with "#" for a lost umlaut: the first of ü, ä, ö that makes it a word of the table (else as is)."""
    if "#" not in word:
        return word
    for u in ("ue", "ae", "oe"):
        if (fold(word.replace("#", u)),) in table:
            return word.replace("#", u)
    return word


def _rejoin(text: str, table) -> str:
    """Words broken across a line with "- " put back together, where the table knows the result: the two parts
    joined ("rechtsschen- kelblock" -> "rechtsschenkelblock"), else joined by their hyphen ("t- veraenderungen" ->
    "t-veraenderungen"); any other "- " (a suspended compound "myokard- oder", a dash) is kept as it is."""
    def close(m: re.Match) -> str:
        for word in (m.group(1) + m.group(2), m.group(1) + "-" + m.group(2)):
            if (fold(_resolve_hash(word, table)),) in table:
                return word
        return m.group()
    return BROKEN.sub(close, text)


def join(tokens: list[str]) -> str:
    """Tokens back into text: a space between tokens, none before closing punctuation or after "("."""
    out = ""
    for t in tokens:
        if out and not (t[0] in PUNCT_CLOSE and len(t) == 1) and not out.endswith("("):
            out += " "
        out += t
    return out


class Translator:
    """translate(report) -> Translation, with the phrase table loaded once."""

    def __init__(self, glossary: str | None = None):
        self.table, self.longest, self.abbreviations = load_glossary(glossary)

    def translate(self, report) -> Translation:
        """One report in English. Raises ReportError for a report that is not text (None, NaN, bytes that are not
        UTF-8); an empty report gives an empty translation (the caller counts it)."""
        if isinstance(report, bytes):
            try:
                report = report.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ReportError(f"report is not UTF-8 text (byte {report[e.start]:#04x} at offset {e.start})") \
                    from None
        if not isinstance(report, str):
            raise ReportError(f"report is {type(report).__name__}, not text")
        result = Translation("")
        text = normalise(report)
        if m := EDIT.search(text):
            result.dropped = sum(k == "word" for k, _ in _tokens(text[m.start():], self.abbreviations))
            text = text[:m.start()].rstrip()
        toks = _tokens(_rejoin(text, self.table), self.abbreviations)
        keys = [fold(_resolve_hash(t, self.table)) if k == "word" else t for k, t in toks]
        out: list[str] = []
        i = 0
        while i < len(toks):
            kind, tok = toks[i]
            if kind == "number" and VERSION_TAG.fullmatch(tok):
                result.version_tags += 1
                i += 1
                continue
            for n in range(min(self.longest, len(toks) - i), 0, -1):
                english = self.table.get(tuple(keys[i:i + n]))
                if english is None or (n == 1 and kind != "word"):
                    continue
                words = sum(k == "word" for k, _ in toks[i:i + n])
                if english == ENGLISH:
                    out.extend(t for _, t in toks[i:i + n])
                    result.english += words
                else:
                    out.append(english)
                    result.translated += words
                i += n
                break
            else:
                out.append(tok)
                if kind == "word":
                    result.unknown[tok] += 1
                elif kind == "lead":
                    result.english += 1
                i += 1
        if not result.translated:   # nothing German: the report is its normalised self (minus the drops)
            result.text = " ".join(t for t in text.split(" ") if not VERSION_TAG.fullmatch(t))
        else:
            result.text = join(out)
        return result


def coverage(results: list[Translation], top: int = TOP_UNKNOWN) -> dict:
    """Word-token shares over many translations (each report counted as often as it occurs in `results`)."""
    translated = sum(r.translated for r in results)
    english = sum(r.english for r in results)
    dropped = sum(r.dropped for r in results)
    unknown = Counter()
    for r in results:
        unknown.update(r.unknown)
    n = translated + english + dropped + sum(unknown.values())
    share = (lambda x: round(x / n, 6)) if n else (lambda x: 0.0)
    return {"n_word_tokens": n, "share_translated": share(translated), "share_english": share(english),
            "share_unknown": share(sum(unknown.values())), "share_dropped_edit": share(dropped),
            "n_version_tags_dropped": sum(r.version_tags for r in results),
            "n_unknown_distinct": len(unknown),
            "top_unknown": [[w, c] for w, c in sorted(unknown.items(), key=lambda x: (-x[1], x[0]))[:top]]}
