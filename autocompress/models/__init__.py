"""Where a user's model comes in: each module turns one kind of model file into what the stages
need, or says which techniques it cannot offer.

* ``keras3``: a Keras 3 ``.keras`` / ``.h5`` file, rebuilt as a tf_keras model (parity-checked);
* ``tflite``: a float ``.tflite`` file (from litert-torch, Keras 3's ``export``, any converter),
  searched over post-training quantization with LiteRT Quantizer;
* ``loading``: any Keras file or SavedModel as a tf_keras model (Keras 2 files load directly);
* ``stored``: what a Keras file says about itself (architecture, compiled loss), read as JSON.
"""
