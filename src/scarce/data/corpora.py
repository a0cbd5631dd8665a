"""Corpus sources behind one interface: a source string in, documents (str) out.

Sources:
- `stdlib`: the running Python's standard-library `.py` files (site-packages and dist-packages left
  out), one document per file, in sorted path order. It ships with every Python, so the default
  corpus needs no download and tests and benchmarks can rely on it.
- `stdlib:library` and `stdlib:tests`: the same files split into two domains a user tells apart, the
  test suites (files named `test_*.py` or under a `test`, `tests` or `idle_test` folder) and the rest
  (library code): the continued-pretraining bench pretrains on one and continues on the other.
- `files:PATH`: a `.txt` file, a `.jsonl` file with a `text` field per line (one document per line),
  or a folder of such files (searched recursively, sorted). A `.txt` file is one document, unless it
  holds lines that are exactly `<|endoftext|>`: those separate documents (the convention of GPT-2
  style text dumps such as TinyStories' `.txt` release).
- `hf:NAME[:CONFIG]`: the `text` field of the `train` split of a Hugging Face dataset, streamed.
  NAME may be a local folder of json/jsonl/parquet/csv files (`hf:/data/mycorpus`). Needs the `hf`
  extra. Such a corpus may be web-scale (FineWeb), so it is only ever iterated (`iter_documents`), never
  read whole (`read_corpus` refuses it), and `scarce.data.prepare.prepare` reads only the prefix it needs.

Documents that are empty or only whitespace are skipped everywhere: they carry no text to learn.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from scarce.errors import UserError

DEFAULT_SOURCE = "stdlib"
TXT_SEPARATOR = "<|endoftext|>"
FILE_SUFFIXES = (".txt", ".jsonl")
STDLIB_DOMAINS = ("library", "tests")
TEST_FOLDERS = {"test", "tests", "idle_test"}
STREAMED_KINDS = ("hf",)


def iter_documents(source: str) -> Iterator[str]:
    """Yield the non-empty documents of `source`, in a deterministic order."""
    kind, _, arg = source.partition(":")
    if kind == "stdlib" and arg in ("", *STDLIB_DOMAINS):
        docs = _stdlib_documents(arg)
    elif kind == "files" and arg:
        docs = _files_documents(Path(arg).expanduser())
    elif kind == "hf" and arg:
        docs = _hf_documents(arg)
    else:
        raise UserError(
            f"unknown corpus source {source!r}; use 'stdlib' (or stdlib:library, stdlib:tests), 'files:PATH' "
            "(a .txt/.jsonl file or a folder) "
            "or 'hf:NAME[:CONFIG]'"
        )
    return (d for d in docs if d.strip())


def is_streamed(source: str) -> bool:
    """Whether `source` is a stream of unknown, possibly web-scale size (`hf:`), not a corpus to hold whole."""
    return source.partition(":")[0] in STREAMED_KINDS


def read_corpus(source: str) -> list[str]:
    """All documents of a local `source` in memory; UserError if there are none (nothing to train on), or if
    `source` is streamed (it may not fit in memory: iterate it with `iter_documents`)."""
    if is_streamed(source):
        raise UserError(f"corpus {source!r} is streamed and may not fit in memory; read it document by document "
                        "(scarce.data.corpora.iter_documents), as prepare does")
    docs = list(iter_documents(source))
    if not docs:
        raise UserError(f"corpus {source!r} holds no non-empty documents; give a corpus with some text")
    return docs


def document_hash(doc: str) -> bytes:
    """sha256 of a document's UTF-8 text: decides its split and its place in the store's order."""
    return hashlib.sha256(doc.encode("utf-8")).digest()


def fingerprint(doc_hashes: Iterable[bytes]) -> str:
    """sha256 over the sorted document hashes: names the corpus content, whatever order it came in."""
    h = hashlib.sha256()
    for d in sorted(doc_hashes):
        h.update(d)
    return h.hexdigest()


def describe(source: str) -> str:
    """One line saying where the documents of `source` come from (for summaries and manifests)."""
    kind, _, arg = source.partition(":")
    if kind == "stdlib":
        return f"Python standard library .py files under {_stdlib_root()}" + (f" ({arg} only)" if arg else "")
    if kind == "files":
        return f"text files under {Path(arg).expanduser().resolve()}"
    if kind == "hf":
        return f"Hugging Face dataset {arg} (train split, text field)"
    return f"unknown source {source!r}"


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_documents(domain: str = "") -> Iterator[str]:
    """The stdlib's .py files; `domain` 'tests' or 'library' keeps one side of the split."""
    paths = []
    root = _stdlib_root()
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in ("site-packages", "dist-packages")]  # not the stdlib
        paths += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    if domain:
        paths = [p for p in paths if _is_test(Path(p).relative_to(root)) == (domain == "tests")]
    for p in sorted(paths):
        # A few test files are deliberately not UTF-8; replacing bad bytes keeps the corpus deterministic.
        yield Path(p).read_bytes().decode("utf-8", errors="replace")


def _is_test(rel: Path) -> bool:
    return rel.name.startswith("test_") or bool(TEST_FOLDERS & set(rel.parts[:-1]))


def _files_documents(path: Path) -> Iterator[str]:
    if not path.exists():
        raise UserError(f"corpus path {path} does not exist; check the path after 'files:'")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in FILE_SUFFIXES)
        if not files:
            raise UserError(f"corpus folder {path} holds no .txt or .jsonl files")
    elif path.suffix in FILE_SUFFIXES:
        files = [path]
    else:
        raise UserError(f"corpus file {path} is neither .txt nor .jsonl; convert it or point at a folder")
    # Checks above run at call time; reading happens lazily, file by file.
    return (doc for f in files for doc in (_jsonl_documents(f) if f.suffix == ".jsonl" else _txt_documents(f)))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid UTF-8 ({e.reason} at byte {e.start}); re-encode it as UTF-8") from None


def _txt_documents(path: Path) -> Iterator[str]:
    text = _read_text(path)
    doc: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.strip() == TXT_SEPARATOR:
            yield "".join(doc)
            doc = []
        else:
            doc.append(line)
    yield "".join(doc)


def _jsonl_documents(path: Path) -> Iterator[str]:
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise UserError(f"{path}:{i} is not a JSON object with a 'text' field") from None
        if not isinstance(text, str):
            raise UserError(f"{path}:{i}: the 'text' field is {type(text).__name__}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate escape such as "\ud800": valid JSON, not text
            raise UserError(f"{path}:{i}: the 'text' field holds a lone surrogate escape (\\u{ord(text[e.start]):04x} "
                            f"at character {e.start}), which is no character; fix or drop the line") from None
        yield text


def _hf_documents(arg: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise UserError("corpus 'hf:...' needs the datasets package: pip install 'scarce[hf]'") from None
    name, _, config = arg.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="train", streaming=True)
    except Exception as e:  # the library raises many types (missing files, network, bad config)
        raise UserError(f"could not load Hugging Face dataset {arg!r}: {e}") from None
    return _quiet(datasets, _hf_texts(ds, arg))


def _quiet(datasets, texts: Iterator[str]) -> Iterator[str]:
    """The texts, with the datasets library's own log lines held back while they are read: a bad file
    becomes one `error:` line (the UserError that names it), not a log line and then the error."""
    verbosity = datasets.utils.logging.get_verbosity()
    datasets.utils.logging.set_verbosity(logging.CRITICAL + 1)
    try:
        yield from texts
    finally:
        datasets.utils.logging.set_verbosity(verbosity)


def _hf_texts(ds: Iterable[dict], arg: str) -> Iterator[str]:
    rows = iter(ds)
    for i in itertools.count():
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as e:  # files are read lazily while streaming: a bad one fails here
            raise UserError(f"reading Hugging Face dataset {arg!r} failed at row {i}: {e}") from None
        text = row.get("text")
        if not isinstance(text, str):
            raise UserError(f"dataset {arg!r} row {i} has no string 'text' field (columns: {sorted(row)})")
        yield text
