"""Raw TensorFlow (no Keras): ``tf.Module``, ``tf.GradientTape`` and ``tf.function``.

Fixes to the source notes' example: ``padding='SAME'`` would keep 28 -> 14 -> 7 and a
7x7x64 flatten (a different, bigger network); here both convolutions are ``'VALID'`` as in
the Keras and PyTorch examples, 28 -> 26 -> 13 -> 11 -> 5, so the flatten is 5x5x64 and the
network has the reference's 121,930 parameters. ``tf.random_normal`` (TF1) with standard
deviation 1 is replaced by Glorot-uniform weights (Keras' default) and zero biases; the
notes' ``tf.optimizers.Adam`` is Keras', so Adam is written out in TensorFlow ops; the
training set is shuffled each epoch; validation reports accuracy, not only loss.
"""

import numpy as np
import tensorflow as tf

from objrec.frameworks._common import EpochClock


def glorot(shape, fan_in, fan_out):
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return tf.Variable(tf.random.uniform(shape, -limit, limit))


class SimpleCNN(tf.Module):
    def __init__(self, channels, n_classes, flat):
        self.conv1 = glorot([3, 3, channels, 32], 9 * channels, 9 * 32)
        self.conv1_b = tf.Variable(tf.zeros([32]))
        self.conv2 = glorot([3, 3, 32, 64], 9 * 32, 9 * 64)
        self.conv2_b = tf.Variable(tf.zeros([64]))
        self.fc1_w = glorot([flat, 64], flat, 64)
        self.fc1_b = tf.Variable(tf.zeros([64]))
        self.fc2_w = glorot([64, n_classes], 64, n_classes)
        self.fc2_b = tf.Variable(tf.zeros([n_classes]))
        self.flat = flat

    def __call__(self, x):
        x = tf.nn.relu(tf.nn.conv2d(x, self.conv1, 1, "VALID") + self.conv1_b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.nn.relu(tf.nn.conv2d(x, self.conv2, 1, "VALID") + self.conv2_b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.reshape(x, [-1, self.flat])
        x = tf.nn.relu(tf.matmul(x, self.fc1_w) + self.fc1_b)
        return tf.matmul(x, self.fc2_w) + self.fc2_b


class Adam(tf.Module):
    def __init__(self, variables, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.t = tf.Variable(0.0)
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]

    def apply(self, grads, variables):
        self.t.assign_add(1.0)
        step = self.lr * tf.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        for g, var, m, v in zip(grads, variables, self.m, self.v, strict=True):
            m.assign(self.b1 * m + (1 - self.b1) * g)
            v.assign(self.b2 * v + (1 - self.b2) * g * g)
            var.assign_sub(step * m / (tf.sqrt(v) + self.eps))


def train(data: dict, epochs: int, batch_size: int, seed: int) -> dict:
    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    h, w, c = data["x_train"].shape[1:]
    flat = ((h - 2) // 2 - 2) // 2 * (((w - 2) // 2 - 2) // 2) * 64
    model = SimpleCNN(c, data["n_classes"], flat)
    optimizer = Adam(model.trainable_variables)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def predict(x):
        return tf.argmax(model(x), axis=1)

    def accuracy(x, y):
        pred = np.concatenate([predict(x[i : i + 1000]).numpy() for i in range(0, len(x), 1000)])
        return float(np.mean(pred == y))

    x_train, y_train = data["x_train"], data["y_train"]
    clock = EpochClock()
    clock.start()
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            train_step(x_train[idx], y_train[idx])
        clock.epoch_end(accuracy(data["x_val"], data["y_val"]))
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return {**clock.result(accuracy(data["x_test"], data["y_test"]), params), "model": model}
