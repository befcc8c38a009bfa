"""Where a task's data comes from: one reader per source, each returning the same arrays.

* ``npz.py``: one ``.npz`` file with ``x_train, y_train, x_val, y_val`` (+ ``x_test, y_test``).
* ``images.py``: a folder with ``train/``, ``val/`` (and ``test/``), one subfolder per class of
  PNG / JPEG files, the layout ``keras.utils.image_dataset_from_directory`` reads; streamed.
* ``pipeline.py``: a function giving a ``tf.data.Dataset`` or any re-iterable of ``(x, y)``
  batches per split; streamed.

``stream.py`` is what a streamed split is (read in batches, its targets held); ``arrays.py``
serves every kind of split to the rest of the package.
"""

from autocompress.data.images import read_image_folder
from autocompress.data.npz import read_npz

__all__ = ["read_image_folder", "read_npz"]
