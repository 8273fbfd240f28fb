"""A small Figure 3: the clustered-pair fraction over (t, β) on the circle and in d = 8, with the curve Γ.

Run: python examples/phase_diagram.py [--out pd.png] [--store pd.zarr] [--overwrite]
The store is resumable: interrupt it and run the same command again (it computes only the missing units);
--overwrite starts it afresh (also needed after changing --batch, --n-beta or --t-max).
"""

import argparse

import numpy as np

from tokensphere.plot import save_figure
from tokensphere.plot.phase import phase_figure
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="phase_diagram.png")
    p.add_argument("--store", default="phase_diagram.zarr")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-beta", type=int, default=12)
    p.add_argument("--t-max", type=float, default=30.0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing store instead of resuming it")
    args = p.parse_args(argv)

    spec = PhaseDiagram(
        dims=(2, 8),
        betas=tuple(np.linspace(0.1, 9.0, args.n_beta)),
        t_max=args.t_max,
        batch=args.batch,
        betas_per_unit=4,
    )
    ds = run_phase_diagram(spec, args.store, overwrite=args.overwrite, progress=lambda done, total: print(f"unit {done}/{total}"))
    save_figure(phase_figure(ds), args.out)
    last = ds["clustered_fraction"].isel(t=-1)
    for d in spec.dims:
        print(f"d = {d}: clustered fraction at t = {spec.t_max:g} for β = {spec.betas[0]:.1f} … {spec.betas[-1]:.1f}:",
              np.round(last.sel(d=d).values, 2))
    print(f"wrote {args.out} and {args.store}")
    return ds


if __name__ == "__main__":
    main()
