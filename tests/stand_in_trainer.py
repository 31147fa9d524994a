"""A stand-in for `python -m harmony_v3.train` in the sweep's tests: no
training, the same folders, exit codes and signal semantics.

It appends one JSON record per call to {logdir}/fake_runs.jsonl (argv,
start, end, CUDA_VISIBLE_DEVICES, the memory share, the SIGTERMs it got,
whether it resumed, whether it saved). It trains for --fake-sleep (or
$FAKE_SLEEP) seconds, then writes done.json. Like the real trainer, SIGTERM
(any number of times, e.g. scancel's and the sweep's at once) means one
clean stop: it saves checkpoint.ckpt once, taking --fake-save-seconds, and
exits with 130. --fake-save-every S also saves every S seconds while it
trains. It fails with exit 1 for the game --fake-fail-game (or
$FAKE_FAIL_GAME), and exits 0 without done.json for $FAKE_NO_DONE_GAME.
Options before the trainer's own flags: --fake-NAME VALUE.
"""
import json
import os
import signal
import sys
import time

args = sys.argv[1:]


def opt(name, env=None, default=None):
  if name in args:
    return args[args.index(name) + 1]
  return os.environ.get(env, default) if env else default


logdir, game = opt('--logdir'), opt('--task').partition('_')[2]
signals = []
signal.signal(signal.SIGTERM, lambda *_: signals.append(time.time()))
checkpoint = os.path.join(logdir, 'checkpoint.ckpt')
record = {'argv': args, 'start': time.time(), 'pid': os.getpid(),
          'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'),
          'xla_mem': os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION'),
          'resumed': os.path.exists(checkpoint), 'saves': 0,
          'slurm_job': os.environ.get('SLURM_JOB_ID'),
          'template_var': os.environ.get('STAND_IN_TEMPLATE_VAR')}
print('fake training', game, 'resumed' if record['resumed'] else 'new',
      flush=True)


def save():
  time.sleep(float(opt('--fake-save-seconds', default='0')))
  with open(checkpoint + '.tmp', 'w') as f:
    f.write('saved')
  os.replace(checkpoint + '.tmp', checkpoint)


end = time.time() + float(opt('--fake-sleep', 'FAKE_SLEEP', '0'))
save_every = float(opt('--fake-save-every', default='0'))
last_save = time.time()
while time.time() < end and not signals:
  time.sleep(0.02)
  if save_every and time.time() - last_save > save_every:
    save()
    last_save = time.time()
if signals:
  save()
  record['saves'] += 1
record['end'] = time.time()
record['signals'] = len(signals)
with open(os.path.join(logdir, 'fake_runs.jsonl'), 'a') as f:
  f.write(json.dumps(record) + '\n')
if signals:
  print('fake trainer: stopped and saved', flush=True)
  sys.exit(130)
if game == opt('--fake-fail-game', 'FAKE_FAIL_GAME'):
  print('Traceback: fake crash in', game, file=sys.stderr)
  sys.exit(1)
if game == os.environ.get('FAKE_NO_DONE_GAME'):
  sys.exit(0)
with open(os.path.join(logdir, 'done.json'), 'w') as f:
  json.dump({'final_eval_mean': 1.5}, f)
