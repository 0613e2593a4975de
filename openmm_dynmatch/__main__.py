import sys

from openmm_dynmatch.cli import main

sys.exit(main())
