"""Make the repository importable as ``ansible_collections.baremetal.lb``.

The repository root is the collection root. When it is not already checked
out under ``ansible_collections/baremetal/lb`` (as ansible-test arranges), a
symlink under ``build/collections`` provides that path.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if ROOT.parent.name == "baremetal" and ROOT.parent.parent.name == "ansible_collections":
    COLLECTIONS = ROOT.parents[2]
else:
    COLLECTIONS = ROOT / "build" / "collections"
    link = COLLECTIONS / "ansible_collections" / "baremetal" / "lb"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
