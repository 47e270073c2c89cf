"""``python -m bench.chaos``: the chaos suite (``make chaos``); see bench/chaos/README.md."""

import os
import sys

# The driver reads the portal's own production web command (run_portal.web_command); Django is
# set up without a database or Redis (the roles get theirs from the suite).
for name in ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "CHANNELS_REDIS_URL", "KUBECONFIG"):
    os.environ.pop(name, None)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.chaos.settings"
os.environ.setdefault("SECRET_KEY", "chaos-" + "k" * 60)

import django  # noqa: E402

django.setup()

from bench.chaos.run import main  # noqa: E402

sys.exit(main())
