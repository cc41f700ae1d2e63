import time

from busshare.core.setpoint import LimitSource
from busshare.core.source_settings import mqtt_settings_from_mapping
from busshare.io.mqtt import MqttBudgetLink

settings = mqtt_settings_from_mapping({"broker": "127.0.0.1:1883"})
with MqttBudgetLink(settings, "garage", default_ttl_s=60, sink=print) as link:
    time.sleep(1)
    link.publish_limit(640, LimitSource.STATIC)
    time.sleep(6)
    print(link.stats.as_dict())
