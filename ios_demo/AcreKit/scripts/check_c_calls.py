#!/usr/bin/env python3
"""Holds the Swift in ios_demo/ to native/include/acre.h without a Swift compiler (there is none where
this was written). For every `acre_*` name the Swift uses it checks that acre.h declares it, and:
  - a function call: the number of arguments equals the prototype's parameters;
  - a C struct built with labels (`acre_decoding(max_new_tokens: ..., ...)`): the labels are the
    struct's fields, all of them, in order (Swift's memberwise initializer of an imported C struct),
    or no arguments (the zero initializer);
  - a closure given the type of a C function pointer typedef (`let f: acre_step_fn = { a, b in ... }`):
    as many parameters as the typedef;
  - `ACRE_*` constants, and snake_case members (`g.kv_heads`, `q.n_spans`): declared in acre.h.
It does not check types, optionality or pointer conversions: that needs the Swift compiler.
Usage: python3 check_c_calls.py [acre.h] [swift files or directories...]"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE.parents[2] / "native" / "include" / "acre.h"
SWIFT = [HERE.parent / "Sources", HERE.parent / "Tests", HERE.parents[1] / "AcreDemo"]


def split_top(text: str) -> list[str]:
    """Comma-separated parts at bracket depth 0."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts]


def closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced at {start}")


def parse_header(path: Path):
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#(?!define).*$", " ", text, flags=re.M)
    constants = set(re.findall(r"#define\s+(ACRE_\w+)", text))
    text = re.sub(r"^\s*#define.*?(?<!\\)$", " ", text, flags=re.M | re.S)
    functions: dict[str, int] = {}
    pointers: dict[str, int] = {}
    structs: dict[str, list[str]] = {}
    types: set[str] = set()
    for m in re.finditer(r"typedef\s+enum\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text, re.S):
        types.update({m.group(1), m.group(3)})
        constants.update(re.findall(r"\b(ACRE_\w+)\b", m.group(2)))
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text, re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = re.sub(r"\[[^\]]*\]", "", decl).strip()
            if not decl:
                continue
            head, *rest = decl.split(",")
            fields.append(re.findall(r"(\w+)\s*$", head)[0])
            fields += [r.strip().lstrip("*").strip() for r in rest]
        structs[m.group(3)] = fields
        types.update({m.group(1), m.group(3)})
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s+(\w+)\s*;", text):
        types.update(m.groups())
    for m in re.finditer(r"typedef\s+[\w\s\*]+\(\s*\*\s*(acre_\w+)\s*\)\s*\(", text):
        end = closing(text, m.end() - 1)
        params = split_top(text[m.end() : end])
        pointers[m.group(1)] = 0 if params == ["void"] else len(params)
        types.add(m.group(1))
    for m in re.finditer(r"\b(acre_\w+)\s*\(", text):
        if m.group(1) in pointers or re.search(r"\(\s*\*\s*$", text[: m.start()]):
            continue
        end = closing(text, m.end() - 1)
        if not re.match(r"\s*;", text[end + 1 :]):
            continue  # not a prototype
        params = split_top(text[m.end() : end])
        functions[m.group(1)] = 0 if params in ([], ["void"]) else len(params)
    return functions, pointers, structs, types, constants


def swift_code(path: Path) -> str:
    """The file with comments and string literals blanked (lengths kept)."""
    text = path.read_text()
    out, i = [], 0
    blank = lambda s: re.sub(r"[^\n]", " ", s)  # noqa: E731
    while i < len(text):
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = len(text) if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i) + 2
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3) + 3
            out.append(blank(text[i:j]))
            i = j
        elif text[i] == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + " " * (j - i - 1) + '"')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def main() -> int:
    header = Path(sys.argv[1]) if len(sys.argv) > 1 else HEADER
    roots = [Path(a) for a in sys.argv[2:]] or SWIFT
    functions, pointers, structs, types, constants = parse_header(header)
    fields = {f for fs in structs.values() for f in fs}
    fields.add("phys_footprint")  # Darwin's task_vm_info (DeviceMemory.swift), not acre.h
    files = sorted(p for r in roots for p in ([r] if r.is_file() else r.rglob("*.swift")))
    problems: list[str] = []
    calls: dict[str, int] = {}
    names: set[str] = set()
    for path in files:
        code = swift_code(path)
        # snake_case properties the Swift declares itself (a Decodable of manifest.json's fields)
        fields.update(re.findall(r"\b(?:let|var)\s+([a-z][a-z0-9]*_[a-z0-9_]+)\s*:", code))
        shown = path.resolve().relative_to(HERE.parents[1]) if path.resolve().is_relative_to(HERE.parents[1]) else path
        where = lambda pos: f"{shown}:{code.count(chr(10), 0, pos) + 1}"  # noqa: E731
        for m in re.finditer(r"\b(acre_\w+)\b", code):
            name = m.group(1)
            names.add(name)
            if name not in functions and name not in types:
                problems.append(f"{where(m.start())}: {name} is not in acre.h")
                continue
            after = code[m.end() :]
            if not after.startswith("("):
                continue
            end = m.end() + closing(after, 0)
            args = split_top(code[m.end() + 1 : end])
            if name in functions:
                calls[name] = calls.get(name, 0) + 1
                if len(args) != functions[name]:
                    problems.append(f"{where(m.start())}: {name} takes {functions[name]} arguments, given {len(args)}")
            elif name in structs and args:
                labels = [re.match(r"(\w+)\s*:", a).group(1) if re.match(r"\w+\s*:", a) else "?" for a in args]
                if labels != structs[name]:
                    problems.append(f"{where(m.start())}: {name}({', '.join(labels)}) but its fields are {structs[name]}")
        for m in re.finditer(r":\s*(acre_\w+)\s*=\s*\{([^{}]*?)\bin\b", code):
            params = [p for p in m.group(2).split(",") if p.strip()]
            if m.group(1) in pointers and len(params) != pointers[m.group(1)]:
                problems.append(f"{where(m.start())}: a {m.group(1)} closure takes {pointers[m.group(1)]} parameters, has {len(params)}")
        for m in re.finditer(r"\b(ACRE_\w+)\b", code):
            if m.group(1) not in constants:
                problems.append(f"{where(m.start())}: {m.group(1)} is not in acre.h")
        for m in re.finditer(r"\.([a-z][a-z0-9]*_[a-z0-9_]+)\b", code):
            if m.group(1) not in fields:
                problems.append(f"{where(m.start())}: member {m.group(1)} is no field of an acre.h struct")
    print(f"acre.h: {len(functions)} functions, {len(structs)} structs, {len(pointers)} function pointer types")
    print(f"Swift: {len(files)} files; {sum(calls.values())} calls of {len(calls)} acre_* functions; "
          f"{len(names)} acre_* names in all")
    for name in sorted(calls):
        print(f"  {name}({functions[name]}) x{calls[name]}")
    for p in problems:
        print("PROBLEM", p)
    print("ok" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
