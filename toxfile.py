"""tox plugin of this project (tox loads a ``toxfile.py`` by itself).

A cell whose solver is MOSEK (``PYLIP_SOLVER=MOSEK``) first asks pylip, inside
the cell's own environment, whether MOSEK can check out a licence. Where it
cannot, the cell is reported by tox as SKIP with pylip's reason, never as a
pass; where it can, the tests run as in any other cell.
"""

from __future__ import annotations

from tox.execute.request import StdinSource
from tox.plugin import impl
from tox.tox_env.api import ToxEnv
from tox.tox_env.errors import Skip

NO_LICENCE = 3
SKIP_REASON_FILE = "skip-reason.txt"
_CHECK = (
    "import sys; from pylip.solvers import mosek_available; "
    f"ok, reason = mosek_available(); print(reason); sys.exit(0 if ok else {NO_LICENCE})"
)


@impl
def tox_before_run_commands(tox_env: ToxEnv) -> None:
    if tox_env.environment_variables.get("PYLIP_SOLVER", "").strip().upper() != "MOSEK":
        return
    reason_file = tox_env.env_dir / SKIP_REASON_FILE
    reason_file.unlink(missing_ok=True)
    outcome = tox_env.execute(
        ["python", "-c", _CHECK], stdin=StdinSource.OFF, show=False, run_id="mosek-licence"
    )
    if outcome.exit_code == NO_LICENCE:
        reason = outcome.out.strip() or "no MOSEK licence"
        reason_file.write_text(reason + "\n")  # for .ci/summary.py: tox p does not print it
        raise Skip(reason)
    outcome.assert_success()  # any other failure of the check is a failure, not a skip
