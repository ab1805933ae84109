"""The toolbox of `ppo_mountaincar.py`: everything that serves the PPO there, none of which a
reader needs to follow the algorithm. One job per module:

    errors         the exceptions that end a run with one line
    startup        a Ctrl-C or SIGTERM while the command line starts: one line
    cpu            the CPU math libraries' settings (one BLAS thread; MKL's fast path on AMD)
    kernels        faster stand-ins for Paddle layers at the update's small shapes
    settings       limits and range checks of the settings, the device, names for runs
    acting         `NumpyNet`: an exact numpy copy of a network, for acting and drawing
    envs           making Gymnasium envs, and MountainCar-v0 batched in numpy
    safe_pickle    reading a pickle from anyone without running or building anything it asks
    param_files    .param files: atomic writes, checksums, reading one safely
    network_files  a network file's description, checked; the tutorial's own files
    stopping       Ctrl-C and SIGTERM as a clean stop
    logbook        VisualDL records, the progress bar and the time split
    checkpoint     a training checkpoint: written, checked and restored side by side
    undo           the point a stop goes back to: the start of the rollout under way
    folders        run names and the folders a run claims
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

The arrows run one way: `ppo_mountaincar` imports the toolbox, the toolbox never imports
it, except its top layer (`cli`, `tune`, `export`), which drives it. A module's docstring says what
it may import.
"""
