"""Hashtag metrics. Sequence metrics as in the original hashtag-story work (BLEU-1..4, ROUGE-L on the
generated hashtag sequence against the post's hashtags), ranking metrics as in the HARRISON benchmark
(P@1, R@5, A@5 on the emitted tags in order), and the image-annotation metrics of the Corel-5k benchmark
(per-class and per-image P/R/F1, N+) on the emitted set. Pure functions over lists of tag strings."""
from __future__ import annotations

import math
from collections import Counter

ROUGE_BETA = 1.2  # recall weight of ROUGE-L's F-measure, as in coco-caption
MAX_BLEU_N = 4
EPSILON = 1e-7  # as in the Corel-5k benchmark code: 0/0 counts as 0


def bleu(candidates: list[list[str]], references: list[list[str]], max_n: int = MAX_BLEU_N) -> list[float]:
    """Corpus BLEU-1..max_n (Papineni et al. 2002): clipped n-gram precisions summed over the corpus,
    cumulative geometric mean, one brevity penalty for the corpus. A zero precision gives 0."""
    matched, total = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, ref in zip(candidates, references, strict=True):
        cand_len += len(cand)
        ref_len += len(ref)
        for n in range(1, max_n + 1):
            c, r = _ngrams(cand, n), _ngrams(ref, n)
            matched[n - 1] += sum(min(count, r[g]) for g, count in c.items())
            total[n - 1] += max(len(cand) - n + 1, 0)
    if cand_len == 0:
        return [0.0] * max_n
    brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
    scores, log_sum = [], 0.0
    for n in range(max_n):
        if matched[n] == 0 or total[n] == 0:
            scores.extend([0.0] * (max_n - n))
            break
        log_sum += math.log(matched[n] / total[n])
        scores.append(brevity * math.exp(log_sum / (n + 1)))
    return scores


def rouge_l(candidates: list[list[str]], references: list[list[str]], beta: float = ROUGE_BETA) -> float:
    """Mean sentence ROUGE-L F-measure (longest common subsequence)."""
    total = 0.0
    for cand, ref in zip(candidates, references, strict=True):
        lcs = _lcs(cand, ref)
        if lcs == 0:
            continue
        p, r = lcs / len(cand), lcs / len(ref)
        total += (1 + beta ** 2) * p * r / (r + beta ** 2 * p)
    return total / len(candidates) if candidates else 0.0


def precision_at_1(ranked: list[list[str]], truth: list[list[str]]) -> float:
    """Share of posts whose top tag is one of theirs."""
    pairs = _scored(ranked, truth)
    return sum(bool(r) and r[0] in t for r, t in pairs) / len(pairs) if pairs else 0.0


def recall_at_k(ranked: list[list[str]], truth: list[list[str]], k: int = 5) -> float:
    """Mean share of a post's tags found in its top k."""
    pairs = _scored(ranked, truth)
    return sum(len(set(r[:k]) & set(t)) / len(set(t)) for r, t in pairs) / len(pairs) if pairs else 0.0


def accuracy_at_k(ranked: list[list[str]], truth: list[list[str]], k: int = 5) -> float:
    """Share of posts with at least one of their tags in the top k."""
    pairs = _scored(ranked, truth)
    return sum(bool(set(r[:k]) & set(t)) for r, t in pairs) / len(pairs) if pairs else 0.0


def annotation_metrics(predicted: list[list[str]], truth: list[list[str]], classes: list[str] | None = None
                       ) -> dict[str, float]:
    """Corel-5k metrics as the benchmark's published code computes them (parham1998's EvaluationMetrics, on
    a 0/1 prediction matrix over the test vocabulary): per-class P and R are means over ALL `classes` of
    TP_c / predicted_c and TP_c / positives_c (a class never predicted has P 0, a class without test
    positives has R 0: the code divides by count + 1e-7), per-class F1 the harmonic mean of the two means;
    per-image ("overall") P, R over all (image, class) pairs; N+ the classes with a correct prediction.
    `classes` defaults to the tags of `truth`; predicted tags outside `classes` are not in the matrix."""
    classes = sorted({t for tags in truth for t in tags}) if classes is None else classes
    index = {c: i for i, c in enumerate(classes)}
    tp, n_pred, n_true = [0] * len(classes), [0] * len(classes), [0] * len(classes)
    for pred, true in zip(predicted, truth, strict=True):
        pred_ids, true_ids = {index[t] for t in pred if t in index}, {index[t] for t in true if t in index}
        for c in pred_ids:
            n_pred[c] += 1
            tp[c] += c in true_ids
        for c in true_ids:
            n_true[c] += 1
    n = max(len(classes), 1)
    p_class = sum(t / (p + EPSILON) for t, p in zip(tp, n_pred)) / n
    r_class = sum(t / (g + EPSILON) for t, g in zip(tp, n_true)) / n
    p_image, r_image = sum(tp) / (sum(n_pred) + EPSILON), sum(tp) / (sum(n_true) + EPSILON)
    return {"per-class P": p_class, "per-class R": r_class, "per-class F1": _f1(p_class, r_class),
            "per-image P": p_image, "per-image R": r_image, "per-image F1": _f1(p_image, r_image),
            "N+": float(sum(t > 0 for t in tp))}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r + EPSILON)


def all_metrics(sequences: list[list[str]], ranked: list[list[str]], truth: list[list[str]], k: int = 5,
                classes: list[str] | None = None) -> dict[str, float]:
    b = bleu(sequences, truth)
    return {
        **annotation_metrics(ranked, truth, classes),
        **{f"BLEU-{n + 1}": b[n] for n in range(MAX_BLEU_N)},
        "ROUGE-L": rouge_l(sequences, truth),
        "P@1": precision_at_1(ranked, truth),
        f"R@{k}": recall_at_k(ranked, truth, k),
        f"A@{k}": accuracy_at_k(ranked, truth, k),
    }


def _scored(ranked, truth):
    # posts without hashtags have nothing to retrieve: ranking metrics skip them
    return [(r, t) for r, t in zip(ranked, truth, strict=True) if t]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]
