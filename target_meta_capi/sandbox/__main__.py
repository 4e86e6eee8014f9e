import sys

from target_meta_capi.sandbox.cli import main

sys.exit(main())
