import sys

from skygrid.cli import main

sys.exit(main())
