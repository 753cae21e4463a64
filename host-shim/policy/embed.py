#!/usr/bin/env python3
"""embed.py FILE.lua OUT.c SYMBOL: a Lua file as a C string constant."""
import sys

src, out, sym = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
lines = ["/* generated from %s by embed.py: do not edit */" % src,
         "const char %s[] =" % sym]
for line in text.splitlines(True):
    esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines.append('\t"%s"' % esc)
lines[-1] += ";"
open(out, "w").write("\n".join(lines) + "\n")
