"""The paper's claims, one per figure, with the criteria written before their sweeps run."""

from pipeline.claims.criteria import Claim, Ordered, Paired, Within
from pipeline.claims.quantities import (
    LAPLACE,
    LMC,
    PATHS,
    SMOOTHING,
    TRANSITION,
    barrier_largest_against_smallest_m,
    decay_costs_true_loss,
    dmmse_bump_at_every_m,
    inf_against_ridge,
    largest_m_against_inf,
    more_data_nearer_dmmse_at_smallest_m,
    more_data_nearer_ridge_at_largest_m,
    nearer_laplace_than_ridge,
    pt_against_smoothed_near_threshold,
    pt_at_ridge_at_largest_m,
    pt_beats_dmmse_near_threshold,
    pt_bumps_at_smallest_m,
    pt_nearer_ridge_at_largest_m,
    pt_on_dmmse_at_smallest_m,
    t_star_exponent,
)

CLAIMS = [
    Claim(
        "fig2_sweep",
        "Below the threshold the transformer behaves like dMMSE; above it, like ridge (Fig. 2).",
        (
            Paired("at the smallest M, Delta^Pre_PT,dMMSE < Delta^Pre_PT,Ridge / 10", pt_on_dmmse_at_smallest_m),
            Paired("at the largest finite M, Delta^True_PT,Ridge < Delta^True_PT,dMMSE", pt_nearer_ridge_at_largest_m),
        ),
    ),
    Claim(
        "fig3_data_scale",
        "More training data (here: steps; in the paper steps or batch alike) pulls the transformer towards dMMSE "
        "below the threshold and towards ridge above it, so the two data scales' Delta^True_PT,Ridge curves "
        "cross at M* (Fig. 3).",
        (
            Paired(
                "at the smallest M, the larger data scale's Delta^True_PT,Ridge > the smaller's",
                more_data_nearer_dmmse_at_smallest_m,
            ),
            Paired(
                "at the largest finite M, the larger data scale's Delta^True_PT,Ridge < the smaller's",
                more_data_nearer_ridge_at_largest_m,
            ),
        ),
    ),
    Claim(
        "fig4_transition_time",
        "Below the threshold the transformer first approaches ridge, then memorises its pool, later the more tasks "
        "it has: the step t* of its closest approach grows as a power of M (Fig. 4; alpha ~ 0.47 in the paper).",
        (
            Paired(
                "alpha > 0: t* ~ M^alpha over the finite M below M* with a U-shaped T_True Delta_PT,Ridge curve "
                "(the value is -alpha)",
                t_star_exponent,
                table=TRANSITION,
            ),
        ),
    ),
    Claim(
        "fig5_interpolation",
        "Between two pool tasks dMMSE's loss bumps at every M; the transformer bumps like dMMSE at small M, beats "
        "dMMSE at the centre near the threshold and is at ridge's level at large M (Fig. 5).",
        (
            Paired(
                "at every M, dMMSE's loss/D at alpha = 1/2 > the mean of its two ends (the value: minus the "
                "smallest bump)",
                dmmse_bump_at_every_m,
                table=PATHS,
            ),
            Paired(
                "at the smallest M, the transformer's loss/D at alpha = 1/2 > ridge's",
                pt_bumps_at_smallest_m,
                table=PATHS,
            ),
            Paired(
                "at the M nearest M*, the transformer's loss/D at alpha = 1/2 < dMMSE's (relative difference)",
                pt_beats_dmmse_near_threshold,
                table=PATHS,
            ),
            Within(
                "at the largest M, the transformer's loss/D at alpha = 1/2 within 10% of ridge's",
                pt_at_ridge_at_largest_m,
                table=PATHS,
                margin=0.10,
            ),
        ),
    ),
    Claim(
        "fig6_dimension",
        "The threshold grows with the task dimension D (Fig. 6).",
        (Ordered("M* at the smallest D is below M* at the largest D", "n_dims", min, max),),
    ),
    Claim(
        "fig7_weight_decay",
        "More weight decay, lower threshold (Fig. 7, left).",
        (Ordered("M* at the largest weight decay is below M* at none", "weight_decay", max, min),),
    ),
    Claim(
        "fig7_width",
        "For the small transformer, a wider embedding, a higher threshold (Fig. 7, middle; the base model's "
        "threshold does not move with width in the paper, which this CPU gallery does not test).",
        (Ordered("M* at the smallest width is below M* at the largest", "n_embd", min, max),),
    ),
    Claim(
        "fig7_depth",
        "More layers, a higher threshold (Fig. 7, right).",
        (Ordered("M* at the smallest depth is below M* at the largest", "n_layer", min, max),),
    ),
    Claim(
        "fig10_final_accuracy",
        "Above the threshold the transformer ends as accurate on fresh tasks as the one trained on infinitely "
        "many tasks (Fig. 10).",
        (
            Within(
                "at the largest finite M (above M*), T_True loss/D within 5% of the M = inf transformer's",
                largest_m_against_inf,
                margin=0.05,
            ),
        ),
    ),
    Claim(
        "fig11_lmc",
        "The transformer trained on few tasks is far from the M = inf one in weight space (a loss barrier on the "
        "straight line between them); above the threshold the barrier is small (Fig. 11).",
        (
            Paired(
                "the T_True loss barrier to PT(inf) at the largest finite M < at the smallest M",
                barrier_largest_against_smallest_m,
                table=LMC,
            ),
        ),
    ),
    Claim(
        "fig12_smoothing",
        "Near the threshold the transformer beats smoothed dMMSE (the pool blurred by the best s), so it is not "
        "a smoothed version of the pool's Bayes predictor (Fig. 12).",
        (
            Paired(
                "at the finite M nearest M*, the transformer's T_True loss/D < smoothed dMMSE's (relative difference)",
                pt_against_smoothed_near_threshold,
                table=SMOOTHING,
            ),
        ),
    ),
    Claim(
        "fig13_weight_decay_loss",
        "The weight decay that lowers the threshold costs accuracy on fresh tasks (Fig. 13).",
        (
            Paired(
                "at the largest M, T_True loss/D at the smallest weight decay < at the largest (relative difference)",
                decay_costs_true_loss,
            ),
        ),
        entry="fig7_weight_decay",
    ),
    Claim(
        "fig14_laplace",
        "With Laplace-distributed tasks, above the threshold the transformer is nearer the Laplace prior's Bayes "
        "predictor than ridge (Fig. 14).",
        (
            Paired(
                "at the largest M, Delta^True_PT,Laplace < Delta^True_PT,Ridge",
                nearer_laplace_than_ridge,
                table=LAPLACE,
            ),
        ),
    ),
    Claim(
        "setting_ridge",
        "The CPU setting trains far enough: on infinitely many tasks the transformer is within 2% of ridge, the "
        "Bayes predictor of the Gaussian prior, on fresh tasks (issue 24; the paper's Fig. 2 at M = inf).",
        (
            Within(
                "at M = inf, T_True loss/D within 2% of ridge's (the value: the relative difference)",
                inf_against_ridge,
                margin=0.02,
            ),
        ),
    ),
]
CLAIMS = {claim.figure: claim for claim in CLAIMS}
