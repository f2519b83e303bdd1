"""ASGI entry point, served by uvicorn (see ../../django_uvicorn/start.sh).

The views stay plain synchronous DRF views: Django's ASGI handler runs each
request's synchronous code through asgiref's sync_to_async(thread_sensitive=
True) inside a ThreadSensitiveContext of that request, that is, in a thread of
the request's own beside the event loop, as many at once as requests arrive.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contacts_api.settings")

application = get_asgi_application()
