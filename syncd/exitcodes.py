"""Exit codes, one per failure class (sysexits.h numbers, so systemd and shells can tell them apart)."""

OK = 0
CHECK_FAILED = 1  # `syncd check` found a problem; `syncd once` finished with a failed stage
USAGE = 2  # bad command line (argparse)
UNAVAILABLE = 69  # Label Studio or S3 unreachable at start
SOFTWARE = 70  # a bug: unexpected internal error
NOPERM = 77  # credentials rejected (Label Studio token, S3 keys)
CONFIG = 78  # invalid configuration or missing secret; systemd should not restart on this

DOC = {
    OK: "success",
    CHECK_FAILED: "a check failed, or a cycle finished with a failed stage",
    USAGE: "bad command line",
    UNAVAILABLE: "Label Studio or S3 unreachable",
    SOFTWARE: "internal error (a bug; please report it)",
    NOPERM: "credentials rejected by Label Studio or S3",
    CONFIG: "invalid configuration or missing secret",
}
