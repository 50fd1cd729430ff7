"""Write the JSON Schema of `.modelship.yml` to config/modelship.schema.json (or check it is current).

python scripts/export_schema.py           # rewrite the committed schema
python scripts/export_schema.py --check   # exit 1 when the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "config" / "modelship.schema.json"


def render() -> str:
    sys.path.insert(0, str(ROOT))
    from bot.config.repo import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed schema is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            print(
                f"{SCHEMA_PATH.relative_to(ROOT)} is stale: run python scripts/export_schema.py",
                file=sys.stderr,
            )
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
