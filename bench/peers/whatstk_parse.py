"""Peer benchmark: parse an export with whatstk (PyPI) and print the message count.
Usage: python whatstk_parse.py FILE [HFORMAT]"""
import sys

from whatstk import df_from_whatsapp

hformat = sys.argv[2] if len(sys.argv) > 2 else None
df = df_from_whatsapp(sys.argv[1], auto_header=hformat is None, hformat=hformat, max_size=1 << 40)
print(len(df))
