import sys

from openclaw_kit.cli import main

sys.exit(main())
