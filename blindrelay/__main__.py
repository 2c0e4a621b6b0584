"""`python -m blindrelay`: the same as the `blindrelay` console script."""

import sys

from blindrelay.cli import main

sys.exit(main())
