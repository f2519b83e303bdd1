"""WSGI entry point, served by gunicorn (see ../../django_gthread/start.sh)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contacts_api.settings")

application = get_wsgi_application()
