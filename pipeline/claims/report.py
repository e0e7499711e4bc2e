"""The claims' verdicts for people: findings.md's table (one row per criterion) and the README's (one row
per claim), both from the verdicts `make figures` writes to docs/figures/claims.json."""

BEGIN, END = "<!-- verdicts: written by make figures -->", "<!-- /verdicts -->"


def claims_table(claims):
    """findings.md's table of the claims' verdicts (pipeline/claims/), one row per criterion."""
    if not claims:
        return []
    lines = ["## Claims and verdicts", "", "| figure | claim | criterion | measured (95% interval) | verdict |"]
    lines.append("|---|---|---|---|---|")
    for claim in claims:
        for i, criterion in enumerate(claim["criteria"]):
            head = [claim["figure"], claim["claim"]] if i == 0 else ["", ""]
            verdict = criterion["verdict"] + (f" (claim: {claim['verdict']}, {claim['made']})" if i == 0 else "")
            lines.append("| " + " | ".join([*head, criterion["criterion"], _measured(criterion), verdict]) + " |")
    return [*lines, ""]


def _measured(criterion):
    """A criterion's number with its interval, in words."""
    if "finding" in criterion:
        return criterion["finding"]
    if "first" in criterion:
        return f"{criterion['first']['finding']}; against {criterion['second']['finding']}"
    value, low, high = (criterion[k] for k in ("value", "low", "high"))
    if value is None:
        return f"not measured (a value missing) over {criterion['replicates']} replicate(s)"
    interval = f" ({low:.3g} to {high:.3g})" if low is not None else " (no interval)"
    margin = f", margin +-{criterion['margin']:g}" if "margin" in criterion else ""
    return f"{value:.3g}{interval} over {criterion['replicates']} replicate(s){margin}"


def readme_verdicts(text, claims):
    """`text` (the README) with the block between BEGIN and END replaced by one row per claim: its figure,
    its verdict, and each criterion's number with its interval (unchanged when the block is missing)."""
    if BEGIN not in text or END not in text:
        return text
    lines = [BEGIN, "", "| figure | claim | verdict | measured (95% interval) |", "|---|---|---|---|"]
    for claim in claims:
        measured = "; ".join(_measured(criterion) for criterion in claim["criteria"])
        lines.append(f"| {claim['figure']} | {claim['claim']} | **{claim['verdict']}** | {measured} |")
    made = sorted(claim["made"] for claim in claims if claim.get("made"))
    when = f"; the last decided {made[-1]}" if made else ""
    lines += ["", f"({len(claims)} claims, each decided by code from its criteria: pipeline/claims/{when})"]
    return text[: text.index(BEGIN)] + "\n".join(lines) + "\n" + text[text.index(END) :]
