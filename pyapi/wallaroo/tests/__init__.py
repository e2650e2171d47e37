"""Unit tests of the wallaroo package; plain unittest, Python 2.7 and 3.x.

Run from the pyapi directory::

    python -m unittest discover -s wallaroo/tests -t .
"""
