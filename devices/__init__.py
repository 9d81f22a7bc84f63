"""Pure device codecs: bytes or payloads in, typed readings out; no I/O, no imports of ours.

``uhf`` (M100/R200 serial frames), ``modbus`` (XY-MD02 / SHT20 Modbus RTU), ``mqtt_formats``
(Zigbee2MQTT and Tasmota payloads), ``epc`` (GS1 EPC Tag Data Standard), ``readings`` (TagRead,
Measurement) and ``errors`` (DeviceError > DecodeError, TransportError).
"""
