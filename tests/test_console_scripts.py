"""ucspi/runtime/console_scripts.py: pip's wrappers of our commands made lean, others untouched."""

import os

from tests import support
from ucspi.runtime import console_scripts, launch

PIP_WRAPPER = """#!/x/.venv/bin/python
# -*- coding: utf-8 -*-
import re
import sys
from supervise.svstat import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def test_pip_wrapper_of_ours_becomes_lean():
    assert console_scripts.lean(PIP_WRAPPER) == \
        "#!/x/.venv/bin/python\nimport sys\nfrom supervise.svstat import main\nsys.exit(main())\n"


def test_other_scripts_are_left_alone():
    assert console_scripts.lean(PIP_WRAPPER.replace("supervise.svstat", "pytest")) is None
    assert console_scripts.lean("#!/bin/sh\nexec true\n") is None
    assert console_scripts.lean("") is None


def test_installed_scripts_are_lean_and_still_warm_started():
    text = open(support.prog("svstat")).read()
    assert "import re" not in text
    assert launch.identify(support.prog("svstat")) == "supervise.svstat"


def test_rewrite_keeps_mode_and_is_idempotent(tmp_path):
    script = tmp_path / "svok"
    script.write_text(PIP_WRAPPER.replace("svstat", "svok"))
    script.chmod(0o755)
    other = tmp_path / "pip"
    other.write_text(PIP_WRAPPER.replace("supervise.svstat", "pip._internal.cli.main"))
    for _ in range(2):
        assert console_scripts.main(["console_scripts", str(tmp_path)]) == 0
    assert script.read_text() == console_scripts.lean(PIP_WRAPPER.replace("svstat", "svok"))
    assert os.stat(script).st_mode & 0o777 == 0o755
    assert "import re" in other.read_text()
