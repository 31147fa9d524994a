"""Why vectorized runs are slow on the CPU: vmapped convolutions.

  python scripts/grouped_conv_check.py [--runs 4]

Under `jax.vmap` a convolution whose weights differ per run becomes one
grouped convolution. This times that against a loop of plain convolutions,
and does the same for a dense layer, forward and (for the convolution)
backward, on whatever device JAX picks. Times are per call, in ms.
"""
import argparse
import time

import jax
import jax.numpy as jnp


def conv(x, w):
  return jax.lax.conv_general_dilated(
      x, w, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def dense(x, w):
  return x @ w


def conv_grad(w, x):
  return jax.grad(lambda w, x: conv(x, w).sum())(w, x)


def milliseconds(fn, *args, calls=20):
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(calls):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / calls * 1e3


def compare(name, fn, *args):
  runs = len(args[0])
  vmapped = jax.jit(jax.vmap(fn))
  looped = jax.jit(lambda *a: jnp.stack(
      [fn(*(x[i] for x in a)) for i in range(runs)]))
  print(f'{name:10s} vmapped {milliseconds(vmapped, *args):7.1f} ms   '
        f'loop of {runs} {milliseconds(looped, *args):7.1f} ms')


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--runs', type=int, default=4)
  runs = parser.parse_args().runs
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  images = jax.random.normal(keys[0], (runs, 256, 32, 32, 16))
  kernels = jax.random.normal(keys[1], (runs, 4, 4, 16, 32))
  inputs = jax.random.normal(keys[2], (runs, 1024, 512))
  weights = jax.random.normal(keys[3], (runs, 512, 512))
  print(f'device: {jax.devices()[0]}, {runs} runs')
  compare('conv', conv, images, kernels)
  compare('conv grad', conv_grad, kernels, images)
  compare('dense', dense, inputs, weights)


if __name__ == '__main__':
  main()
