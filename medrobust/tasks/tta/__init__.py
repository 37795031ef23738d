"""DynTTA runs on top of the tasks: load a medrobust run (or a local-weights model), freeze it, train
the enhancer of :mod:`medrobust.tta` on the shared loop (:mod:`.train`), and the report sections and
blend-weight chart that ``medrobust evaluate --tta`` adds (:mod:`.report`).

The package root imports nothing, so the task packages can use :mod:`.report` without a cycle."""
