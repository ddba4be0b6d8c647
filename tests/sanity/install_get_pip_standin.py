"""Put the offline pip bootstrap stand-in where ansible-test looks for it."""

import re
import shutil
from pathlib import Path

import ansible_test

source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
version = re.search(r"pip='([0-9.]+)'", source.read_text())
if version is None:
    raise SystemExit(f"cannot find ansible-test's pip version in {source}")
target = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.group(1).replace('.', '_')}.py"
target.parent.mkdir(parents=True, exist_ok=True)
shutil.copyfile(Path(__file__).with_name("get_pip_standin.py"), target)
print(f"pip bootstrap stand-in: {target}")
