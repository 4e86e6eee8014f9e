"""`python -m target_meta_capi`: the `target-meta-capi` command, for a Python without the
installed script on its PATH."""

from target_meta_capi.cli import main

main()
