#!/usr/bin/env python3
"""Folder dependency graph of a Swift target: which folder uses a type, function or constant
declared in which other folder. A folder's Unsafe/ subfolder counts as the folder itself.

usage: tools/folder_graph.py [Sources/Resilience] [--why A B]
Prints one line per edge (A -> B: names), then the cycles, if any (exit 1 when there are)."""
import os, re, sys
from collections import defaultdict

root = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith('--') else 'Sources/Resilience'
why = sys.argv[sys.argv.index('--why') + 1:sys.argv.index('--why') + 3] if '--why' in sys.argv else None
# A top-level declaration (no indentation): the names that make up a folder's vocabulary.
DECL = re.compile(r'^(?:@[\w()":, ]+\s+)*(?:(?:public|package|internal|final|indirect|open)\s+)*'
                  r'(?:class|struct|enum|protocol|actor|typealias|func|let|var)\s+([A-Za-z_]\w*)', re.M)
WORD = re.compile(r'\b[A-Za-z_]\w*\b')

def folder(path):
    rel = os.path.relpath(path, root).split(os.sep)
    parts = [p for p in rel[:-1] if p != 'Unsafe']
    return '/'.join(parts) or '.'

def strip(text):
    text = re.sub(r'//.*', '', text)
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)

if not os.path.isdir(root):
    sys.exit(f'folder_graph: {root}: not a directory (give a Swift target, e.g. Sources/Resilience)')
files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.swift')]
if not files:
    sys.exit(f'folder_graph: {root}: no Swift files: nothing to graph')
owner, texts = {}, {}
for f in files:
    text = strip(open(f).read())
    texts[f] = text
    for m in DECL.finditer(text):
        owner.setdefault(m.group(1), folder(f))
edges = defaultdict(set)
for f, text in texts.items():
    a = folder(f)
    for w in set(WORD.findall(text)):
        b = owner.get(w)
        if b and b != a and b != '.' and a != '.':
            edges[(a, b)].add(w)
if why:
    print(sorted(edges.get(tuple(why), [])))
    sys.exit(0)
for (a, b), names in sorted(edges.items()):
    print(f'{a} -> {b}: {", ".join(sorted(names)[:8])}{" …" if len(names) > 8 else ""}')
graph = defaultdict(set)
for a, b in edges: graph[a].add(b)
# Strongly connected components (Tarjan): a component of more than one folder is a cycle.
index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        comps.append(comp)
for v in list(graph):
    if v not in index: visit(v)
cycles = [sorted(c) for c in comps if len(c) > 1]
print('cycles:', cycles if cycles else 'none')
sys.exit(1 if cycles else 0)
