"""The toolbox of `ppo_mountaincar.py`: everything that serves the PPO there, none of which a
reader needs to follow the algorithm. One job per module:

    errors         the exceptions that end a run with one line
    startup        a Ctrl-C or SIGTERM while the command line starts: one line
    cpu            the CPU math libraries' settings (one BLAS thread; MKL's fast path on AMD)
    kernels        faster stand-ins for Paddle layers at the update's small shapes
    settings       each setting's roles (read from `Args`), limits and range checks, the device
    acting         `NumpyNet`: an exact numpy copy of a network, for acting and drawing
    envs           making Gymnasium envs, and MountainCar-v0 batched in numpy
    param_grammar  reading a .param file from anyone: a recognizer of paddle.save's layouts
    param_files    .param files: atomic writes, checksums, reading one safely
    network_files  a network file's description, checked; the tutorial's own files
    stopping       Ctrl-C and SIGTERM as a clean stop
    logbook        VisualDL records, the progress bar and the time split
    run_state      a run's state: what each part of a run says it is and takes back
    checkpoint     the checkpoint: a run's state in a file, written, checked and placed
    undo           the point a stop goes back to: the start of the rollout under way
    folders        run names, and claiming one
    run_folder     the run folder's lifecycle: claim, lock, links, checked writes, cleanup
    best_policy    the periodic evaluation and the best policy so far
    run            `Run`: the books of one training run, as `train` uses them
    evaluation     evaluating a policy; playing an episode
    replay         replaying a saved actor into a GIF or a window; showing images inline
    figures        the figures of a run
    search_space   the search space of `tune`: the default one, reading and checking one
    studies        the Optuna studies of `tune`: kept in a file or a database, a URL's password masked
    export         a policy for Paddle Inference and ONNX (imports the script)
    tune           hyperparameter search with Optuna (imports the script)
    cli            the command line (imports the script)

The arrows run one way: `ppo_mountaincar` imports the toolbox, the toolbox does not import it,
with two exceptions. The top layer (`cli`, `tune`, `export`) drives the script: the command
line's flags are the fields of its `Args`, `tune` runs its `train`, `export` rebuilds its
`Actor`; the script imports the top layer only when run as a command, after it has loaded, so
the circle never closes while modules load, and handing these three their script instead
would thread a module through every command for no reader's gain. And `evaluation` acts by
the script's `sample_actions`, imported when a policy is made: the sampling rule is what the
script teaches, so it is written there, once. A module's docstring says what it may import.
"""
