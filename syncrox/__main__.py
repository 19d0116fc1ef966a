import sys

from syncrox.cli import main

sys.exit(main())
