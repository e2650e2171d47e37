import wallaroo

VALUE = 1
