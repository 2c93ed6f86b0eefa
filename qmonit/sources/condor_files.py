"""HTCondor ads from recorded outputs (`condor_q -long`/`-json`, `condor_status
-long`/`-json`), parsed by the real classad2, for `qmonit states test --input` and tests."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import classad2

BATCH = 500  # classad2.parseAds is superlinear on one big string


def _classad2() -> Any:
    """The HTCondor bindings (the optional `htcondor` extra), imported when a recorded ad is
    read: the registry imports this module, and a qmonit without them runs every other
    source."""
    try:
        import classad2
    except ImportError:
        raise ValueError("reading HTCondor ads needs the HTCondor bindings: "
                         "pip install 'qmonit[htcondor]'") from None
    return classad2


def parse_long(text: str) -> list[classad2.ClassAd]:
    """`condor_q -long` / `condor_status -long`: ads separated by blank lines."""
    classad2 = _classad2()
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    ads = []
    for start in range(0, len(blocks), BATCH):
        ads += list(classad2.parseAds("\n\n".join(blocks[start:start + BATCH])))
    return ads


def parse_json(text: str) -> list[classad2.ClassAd]:
    """`condor_q -json`: a JSON array (or one object); "\\/Expr(...)\\/" strings are
    unevaluated expressions."""
    classad2 = _classad2()
    records = json.loads(text)
    out = []
    for record in records if isinstance(records, list) else [records]:
        ad = classad2.ClassAd()
        for key, value in record.items():
            if isinstance(value, str) and value.startswith("/Expr(") and value.endswith(")/"):
                ad[key] = classad2.ExprTree(value[6:-2])
            elif value is not None:
                ad[key] = value
        out.append(ad)
    return out


def parse_ads(text: str) -> list[classad2.ClassAd]:
    """Either format, told apart by its first character."""
    return parse_json(text) if text.lstrip()[:1] in ("[", "{") else parse_long(text)
