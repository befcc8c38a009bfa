"""What is done to a converted ``.tflite`` file itself, through LiteRT and its Quantizer (the
stages make the Keras model; :mod:`autocompress.stages.convert` turns it into a file and uses
these):

* ``ptq.py``: post-training quantization of a float file by LiteRT Quantizer (every mode the
  converter lacks, range algorithms, layers kept at higher precision);
* ``sensitivity.py``: the file's layers ranked by how much int8 costs the task's metric (what a
  recipe's ``keep_sensitive`` keeps);
* ``refill.py``: a converted file of the same architecture given new weights, proved equal to a
  fresh conversion (saves the converter's seconds per candidate).
"""
