"""Reference networks for the profile checks, built at the resolution each published row states.

``tf_keras.applications`` where it has the network (``weights=None``: latency does not depend on
the weights' values). The networks the published GPU tables measured in their PyTorch form are
built here layer for layer as torchvision defines them: ResNet v1.5 (the stride on the 3x3
convolution of each downsampling bottleneck, unlike Keras' ResNet50, which is v1), VGG-11/13,
AlexNet, SqueezeNet 1.0/1.1 and ShuffleNet V2 1.0x. A builder name with a depth or version in it
(``TorchResNet50``) picks the variant.
"""

from __future__ import annotations

from typing import Any


def build(builder: str, size: int, alpha: float = 1.0) -> Any:
    """The ``tf_keras`` model of ``builder`` at ``size`` x ``size`` px (3 channels)."""
    import tf_keras as keras

    shape = (size, size, 3)
    if builder == "UnetMobileNetV2":
        return unet_mobilenet_v2(size)
    if builder == "TorchSEResNet50":
        return torch_resnet(50, shape, se=True)
    if builder == "TorchResNeXt50":
        return torch_resnet(50, shape, groups=32)
    if builder.startswith("TorchResNet"):
        return torch_resnet(int(builder.removeprefix("TorchResNet")), shape)
    if builder.startswith("TorchVGG"):
        return torch_vgg(int(builder.removeprefix("TorchVGG")), shape)
    if builder == "AlexNet":
        return alexnet(shape)
    if builder.startswith("SqueezeNet"):
        return squeezenet(builder.removeprefix("SqueezeNet"), shape)
    if builder == "ShuffleNetV2":
        return shufflenet_v2(shape)
    kwargs = {"alpha": alpha} if builder in ("MobileNet", "MobileNetV2") else {}
    return getattr(keras.applications, builder)(weights=None, input_shape=shape, **kwargs)


def unet_mobilenet_v2(size: int) -> Any:
    """Coral's "Unet Mv2 (128x128)": TensorFlow's segmentation tutorial, a MobileNetV2 encoder
    (five skip outputs) and pix2pix upsampling blocks (transposed conv, BatchNorm, ReLU)."""
    import tf_keras as keras

    layers = keras.layers
    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None
    )
    names = [
        "block_1_expand_relu",
        "block_3_expand_relu",
        "block_6_expand_relu",
        "block_13_expand_relu",
        "block_16_project",
    ]
    encoder = keras.Model(base.input, [base.get_layer(n).output for n in names])
    inputs = keras.Input((size, size, 3))
    skips = encoder(inputs)
    x = skips[-1]
    for filters, skip in zip((512, 256, 128, 64), reversed(skips[:-1]), strict=True):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Concatenate()([x, skip])
    return keras.Model(inputs, layers.Conv2DTranspose(3, 3, strides=2, padding="same")(x))


def _conv_bn(x: Any, filters: int, kernel: int, stride: int = 1, relu: bool = True) -> Any:
    from tf_keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x) if relu else x


def torch_resnet(depth: int, shape: tuple[int, int, int], se: bool = False, groups: int = 1) -> Any:
    """torchvision's ``resnet<depth>``: basic blocks for 18/34, v1.5 bottlenecks for 50+;
    ``groups=32``: ``resnext50_32x4d`` (grouped 3x3, 4 channels a group at the first stage);
    ``se``: SE-ResNet (squeeze-and-excitation, reduction 16, on each block's residual branch,
    as mmcls' ``seresnet50``)."""
    import tf_keras as keras
    from tf_keras import layers

    repeats = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
    repeats[152] = (3, 8, 36, 3)
    bottleneck = depth >= 50
    inputs = keras.Input(shape)
    x = _conv_bn(inputs, 64, 7, 2)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for stage, count in enumerate(repeats[depth]):
        width = 64 * 2**stage
        for block in range(count):
            stride = 2 if block == 0 and stage > 0 else 1
            out = width * 4 if bottleneck else width
            shortcut = x
            if block == 0 and (stride != 1 or int(x.shape[-1]) != out):
                shortcut = _conv_bn(x, out, 1, stride, relu=False)
            if bottleneck:
                inner = width * 2 if groups > 1 else width  # resnext50_32x4d: 32 groups x 4
                y = _conv_bn(x, inner, 1)
                y = layers.Conv2D(
                    inner, 3, strides=stride, padding="same", use_bias=False, groups=groups
                )(y)  # v1.5: the stride is here
                y = layers.ReLU()(layers.BatchNormalization()(y))
                y = _conv_bn(y, out, 1, relu=False)
                if se:
                    w = layers.GlobalAveragePooling2D(keepdims=True)(y)
                    w = layers.Conv2D(out // 16, 1, activation="relu")(w)
                    w = layers.Conv2D(out, 1, activation="sigmoid")(w)
                    y = layers.Multiply()([y, w])
            else:
                y = _conv_bn(x, width, 3, stride)
                y = _conv_bn(y, width, 3, relu=False)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000)(x))


def _classifier(x: Any) -> Any:
    from tf_keras import layers

    x = layers.Flatten()(x)
    x = layers.Dense(4096, activation="relu")(x)
    x = layers.Dense(4096, activation="relu")(x)
    return layers.Dense(1000)(x)


def torch_vgg(depth: int, shape: tuple[int, int, int]) -> Any:
    """torchvision's ``vgg11`` / ``vgg13`` (no BatchNorm)."""
    import tf_keras as keras
    from tf_keras import layers

    config = {
        11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
        13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    }[depth]
    inputs = keras.Input(shape)
    x = inputs
    for item in config:
        if item == "M":
            x = layers.MaxPooling2D(2)(x)
        else:
            x = layers.Conv2D(int(item), 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, _classifier(x))


def alexnet(shape: tuple[int, int, int]) -> Any:
    """torchvision's ``alexnet`` (6x6x256 features at 224 px)."""
    import tf_keras as keras
    from tf_keras import layers

    inputs = keras.Input(shape)
    x = layers.ZeroPadding2D(2)(inputs)
    x = layers.Conv2D(64, 11, strides=4, activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Conv2D(192, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    for filters in (384, 256, 256):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    return keras.Model(inputs, _classifier(x))


def squeezenet(version: str, shape: tuple[int, int, int]) -> Any:
    """torchvision's ``squeezenet1_0`` / ``squeezenet1_1``."""
    import tf_keras as keras
    from tf_keras import layers

    def fire(x: Any, squeeze: int, expand: int) -> Any:
        s = layers.Conv2D(squeeze, 1, activation="relu")(x)
        a = layers.Conv2D(expand, 1, activation="relu")(s)
        b = layers.Conv2D(expand, 3, padding="same", activation="relu")(s)
        return layers.Concatenate()([a, b])

    inputs = keras.Input(shape)
    if version == "1_0":
        x = layers.Conv2D(96, 7, strides=2, activation="relu")(inputs)
        plan = ((16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192), (64, 256))
        plan = (*plan, "M", (64, 256))
    else:
        x = layers.Conv2D(64, 3, strides=2, activation="relu")(inputs)
        plan = ((16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192))
        plan = (*plan, (64, 256), (64, 256))
    x = layers.MaxPooling2D(3, 2)(x)
    for item in plan:
        x = layers.MaxPooling2D(3, 2)(x) if item == "M" else fire(x, *item)
    x = layers.Conv2D(1000, 1, activation="relu")(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


def shufflenet_v2(shape: tuple[int, int, int]) -> Any:
    """torchvision's ``shufflenet_v2_x1_0``: channel split, two branches, channel shuffle."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    def depthwise(x: Any, stride: int) -> Any:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        return layers.BatchNormalization()(x)

    def shuffle(x: Any) -> Any:
        h, w, c = (int(d) for d in x.shape[1:])
        x = layers.Reshape((h, w, 2, c // 2))(x)
        x = layers.Permute((1, 2, 4, 3))(x)
        return layers.Reshape((h, w, c))(x)

    inputs = keras.Input(shape)
    x = _conv_bn(inputs, 24, 3, 2)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for out, repeats in ((116, 4), (232, 8), (464, 4)):
        half = out // 2
        left = _conv_bn(depthwise(x, 2), half, 1)
        right = _conv_bn(depthwise(_conv_bn(x, half, 1), 2), half, 1)
        x = shuffle(layers.Concatenate()([left, right]))
        for _ in range(repeats - 1):
            keep, work = layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)
            work = _conv_bn(depthwise(_conv_bn(work, half, 1), 1), half, 1)
            x = shuffle(layers.Concatenate()([keep, work]))
    x = _conv_bn(x, 1024, 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000)(x))
