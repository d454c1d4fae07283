from mmdesk.cli import main

raise SystemExit(main())
