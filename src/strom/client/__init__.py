"""The client layer: producers, consumers and admin on a Log, in kafka-python's vocabulary.

It sits above storage and groups and is imported by nothing beneath it.  So
far it holds the partitioners (partitioner.py) that the producer will use.
"""
