from piccolo.conf.apps import AppRegistry

from backend.core.db import engine_from_url
from backend.settings import get_settings

DB = engine_from_url(get_settings().database_url, get_settings())

APP_REGISTRY = AppRegistry(apps=["backend.piccolo_app"])
