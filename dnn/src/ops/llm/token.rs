//! The two ops that chain the steps of a generation into one graph (`docs/spec/ops.md`
//! §5.8, `docs/spec/llm-generation.md`): `token_select` picks the token a step reads (a
//! prompt token, or the previous step's argmax once the prompt is consumed) and
//! `token_emit` writes a step's argmax into the generated-token vector when the step's
//! position falls in the claimed window. Both are total: any input bytes (a length out of
//! range, an id outside the vocabulary) give a defined output, so that every claim over
//! published input bytes can be re-run and disputed.

use super::super::check::{bad, want, OpResult};
use crate::tensor::{DType, TensorSpec};

/// Index of the prompt length and of the generation length in the `lengths` input.
pub const PROMPT_LEN: usize = 0;
/// Index of the number of tokens to generate in the `lengths` input.
pub const GEN_LEN: usize = 1;

/// `lengths[PROMPT_LEN]` clamped to `1..=max_prompt`: the prompt length the graph uses.
pub fn prompt_len(lengths: &[i32], max_prompt: usize) -> usize {
    (lengths[PROMPT_LEN].max(1) as usize).min(max_prompt)
}

/// `lengths[GEN_LEN]` clamped to `0..=max_new`: the number of tokens the graph emits.
pub fn gen_len(lengths: &[i32], max_new: usize) -> usize {
    (lengths[GEN_LEN].max(0) as usize).min(max_new)
}

fn want_vector(s: &TensorSpec, len: Option<usize>, what: &str) -> OpResult<usize> {
    want(s, DType::I32, what)?;
    match (s.shape.as_slice(), len) {
        ([n], None) if *n >= 1 => Ok(*n),
        ([n], Some(l)) if *n == l => Ok(*n),
        (_, None) => Err(bad(format!("{what} must be i32 [n] with n >= 1, got {:?}", s.shape))),
        (_, Some(l)) => Err(bad(format!("{what} must be i32 [{l}], got {:?}", s.shape))),
    }
}

/// Shape rule of `token_select { pos, vocab }`: `prompt` i32 `[P]`, `lengths` i32 `[2]`,
/// and `prev` i32 `[1]` when `pos > 0` -> i32 `[1]`.
pub(crate) fn token_select_rule(ins: &[&TensorSpec], vocab: usize) -> OpResult<TensorSpec> {
    if vocab == 0 || vocab > i32::MAX as usize {
        return Err(bad(format!("vocabulary {vocab} outside 1..=2^31-1")));
    }
    want_vector(ins[0], None, "prompt")?;
    want_vector(ins[1], Some(2), "lengths")?;
    if let Some(prev) = ins.get(2) {
        want_vector(prev, Some(1), "prev")?;
    }
    Ok(TensorSpec::new(DType::I32, vec![1]))
}

/// `token_select`: `t = prompt[pos]` while `pos < n` (the prompt length clamped to
/// `1..=P`), else `prev[0]`; an id outside `0..vocab` becomes 0. At `pos = 0` there is no
/// `prev` (`n >= 1`, so the prompt's first token is read).
pub fn token_select(prompt: &[i32], lengths: &[i32], prev: Option<&[i32]>, pos: usize, vocab: usize) -> OpResult<i32> {
    if prompt.is_empty() || lengths.len() != 2 || prev.is_some_and(|p| p.len() != 1) {
        return Err(bad("token_select: operands of the wrong length"));
    }
    let n = prompt_len(lengths, prompt.len());
    let t = if pos < n {
        prompt[pos]
    } else {
        match prev {
            Some(p) => p[0],
            None => return Err(bad("token_select at position 0 reads the prompt only")),
        }
    };
    Ok(if t >= 0 && (t as usize) < vocab { t } else { 0 })
}

/// Shape rule of `token_emit { pos, max_prompt, max_new }`: `gen` i32 `[max_new]` when
/// `pos > 0`, `lengths` i32 `[2]`, `next` i32 `[1]` -> i32 `[max_new]`.
pub(crate) fn token_emit_rule(
    ins: &[&TensorSpec],
    pos: usize,
    max_prompt: usize,
    max_new: usize,
) -> OpResult<TensorSpec> {
    if max_prompt == 0 || max_new == 0 || max_prompt > i32::MAX as usize || max_new > i32::MAX as usize {
        return Err(bad(format!("limits {max_prompt} / {max_new} outside 1..=2^31-1")));
    }
    let ins = if pos > 0 {
        want_vector(ins[0], Some(max_new), "gen")?;
        &ins[1..]
    } else {
        ins
    };
    want_vector(ins[0], Some(2), "lengths")?;
    want_vector(ins[1], Some(1), "next")?;
    Ok(TensorSpec::new(DType::I32, vec![max_new]))
}

/// `token_emit`: a copy of `gen` (zeros at `pos = 0`) with `out[j] = next[0]` where
/// `j = pos + 1 - n` (`n` the clamped prompt length) when `0 <= j < g` (`g` the clamped
/// generation length): the step at position `pos` predicts the token at `pos + 1`, the
/// `j`-th generated one.
pub fn token_emit(
    gen: Option<&[i32]>,
    lengths: &[i32],
    next: &[i32],
    pos: usize,
    max_prompt: usize,
    max_new: usize,
) -> OpResult<Vec<i32>> {
    if lengths.len() != 2 || next.len() != 1 || gen.is_some_and(|g| g.len() != max_new) {
        return Err(bad("token_emit: operands of the wrong length"));
    }
    let mut out = gen.map_or_else(|| vec![0; max_new], <[i32]>::to_vec);
    let (n, g) = (prompt_len(lengths, max_prompt), gen_len(lengths, max_new));
    // j = pos + 1 - n, formed as pos - (n - 1) so that no position overflows.
    if let Some(j) = pos.checked_sub(n - 1).filter(|&j| j < g) {
        out[j] = next[0];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_reads_the_prompt_then_the_previous_argmax() {
        let prompt = [5, 6, 7, 8];
        // Hand-derived: prompt of 3 tokens, so positions 0..2 read it and 3.. read prev.
        let l = [3, 4];
        assert_eq!(token_select(&prompt, &l, None, 0, 100).unwrap(), 5);
        assert_eq!(token_select(&prompt, &l, Some(&[9]), 2, 100).unwrap(), 7);
        assert_eq!(token_select(&prompt, &l, Some(&[9]), 3, 100).unwrap(), 9);
        assert_eq!(token_select(&prompt, &l, Some(&[9]), 40, 100).unwrap(), 9);
        // Lengths clamped: 0 -> 1, 99 -> 4.
        assert_eq!(token_select(&prompt, &[0, 0], Some(&[9]), 1, 100).unwrap(), 9);
        assert_eq!(token_select(&prompt, &[99, 0], Some(&[9]), 3, 100).unwrap(), 8);
        assert_eq!(token_select(&prompt, &[i32::MIN, 0], Some(&[9]), 1, 100).unwrap(), 9);
        // Ids outside the vocabulary become 0.
        assert_eq!(token_select(&[-1], &[1, 0], None, 0, 100).unwrap(), 0);
        assert_eq!(token_select(&prompt, &l, Some(&[100]), 3, 100).unwrap(), 0);
        assert_eq!(token_select(&prompt, &l, Some(&[99]), 3, 100).unwrap(), 99);
    }

    #[test]
    fn emit_writes_only_inside_the_window() {
        // Prompt of 3 tokens, 2 to generate: positions 2 and 3 emit tokens 0 and 1.
        let l = [3, 2];
        let mut gen = token_emit(None, &l, &[11], 0, 4, 3).unwrap();
        assert_eq!(gen, [0, 0, 0]);
        for (pos, next) in [(1, 12), (2, 13), (3, 14), (4, 15), (5, 16)] {
            gen = token_emit(Some(&gen), &l, &[next], pos, 4, 3).unwrap();
        }
        assert_eq!(gen, [13, 14, 0]);
        // Generation length clamped to max_new; negative to 0.
        let g = token_emit(Some(&[1, 2, 3]), &[1, 9], &[7], 2, 4, 3).unwrap();
        assert_eq!(g, [1, 2, 7]);
        let g = token_emit(Some(&[1, 2, 3]), &[1, -5], &[7], 0, 4, 3).unwrap();
        assert_eq!(g, [1, 2, 3]);
        // Prompt length clamped to max_prompt: 9 -> 4, so position 3 emits token 0.
        assert_eq!(token_emit(None, &[9, 1], &[7], 3, 4, 3).unwrap(), [7, 0, 0]);
        // Any position: the largest is past every window.
        assert_eq!(token_emit(None, &[1, 3], &[7], usize::MAX, 4, 3).unwrap(), [0, 0, 0]);
    }

    #[test]
    fn rules_check_every_operand() {
        let v = |n: usize| TensorSpec::new(DType::I32, vec![n]);
        let (p, l, one) = (v(4), v(2), v(1));
        assert_eq!(token_select_rule(&[&p, &l], 10).unwrap(), one);
        assert_eq!(token_select_rule(&[&p, &l, &one], 10).unwrap(), one);
        assert!(token_select_rule(&[&p, &v(3)], 10).is_err());
        assert!(token_select_rule(&[&p, &l, &v(2)], 10).is_err());
        assert!(token_select_rule(&[&v(0), &l], 10).is_err());
        assert!(token_select_rule(&[&p, &l], 0).is_err());
        let i8p = TensorSpec::new(DType::I8, vec![4]);
        assert!(token_select_rule(&[&i8p, &l], 10).is_err());
        assert_eq!(token_emit_rule(&[&l, &one], 0, 4, 3).unwrap(), v(3));
        assert_eq!(token_emit_rule(&[&v(3), &l, &one], 1, 4, 3).unwrap(), v(3));
        assert!(token_emit_rule(&[&v(4), &l, &one], 1, 4, 3).is_err());
        assert!(token_emit_rule(&[&l, &v(2)], 0, 4, 3).is_err());
        assert!(token_emit_rule(&[&l, &one], 0, 4, 0).is_err());
    }
}
