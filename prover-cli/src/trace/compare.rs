//! Comparing two traces of one model (`docs/spec/commitments.md` § Slot vector and graph
//! states): `S_0` holds the inputs, node `j` (0-based) writes slot `m + j` and so turns
//! `S_j` into `S_{j+1}`. The first differing state `S_i` names node `i - 1`.

use opml_dnn::commit::graph_states;
use opml_dnn::trace::Trace;
use opml_merkle::Hash;

/// How two traces relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Different model commitments: nothing to compare.
    Models { a: Hash, b: Hash },
    /// Same model, different inputs (the first differing input commitment).
    Inputs { input: usize, a: Hash, b: Hash },
    /// Every graph state agrees (`n + 1` states).
    Agree { states: usize },
    /// The first differing graph state.
    Differ(FirstDifference),
}

/// Where two traces of the same model and inputs part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstDifference {
    /// `i`: `S_i` is the first state that differs (`1 <= i <= n`).
    pub state: usize,
    /// Node `i - 1`, whose output is the first disagreement.
    pub node: usize,
    /// Its output slot `m + i - 1`.
    pub slot: usize,
    /// `S_{i-1}`, the last state both agree on.
    pub agreed: Hash,
    /// `S_i` of each trace.
    pub state_a: Hash,
    pub state_b: Hash,
    /// The node's output commitment in each trace.
    pub output_a: Hash,
    pub output_b: Hash,
    /// How many node outputs differ in all.
    pub differing_nodes: usize,
}

/// Why a trace is not what `opml infer --trace` writes (the reader checked the layout).
pub fn check(t: &Trace) -> Result<(), String> {
    let (m, n) = (t.inputs.len(), t.nodes.len());
    let want = (m + n).next_power_of_two();
    if t.slot_len as usize != want {
        return Err(format!("slot vector length {} for {m} inputs and {n} nodes, expected {want}", t.slot_len));
    }
    let states = graph_states(want, &t.inputs, &t.nodes);
    match states.iter().zip(&t.states).position(|(x, y)| x != y) {
        Some(i) => Err(format!("S_{i} is not the root of its slot commitments")),
        None => Ok(()),
    }
}

/// Compare two traces that each passed [`check`].
pub fn compare(a: &Trace, b: &Trace) -> Verdict {
    if a.model != b.model {
        return Verdict::Models { a: a.model, b: b.model };
    }
    if let Some(i) = (0..a.inputs.len().max(b.inputs.len())).find(|&i| a.inputs.get(i) != b.inputs.get(i)) {
        let get = |t: &Trace| t.inputs.get(i).copied().unwrap_or_default();
        return Verdict::Inputs { input: i, a: get(a), b: get(b) };
    }
    // One model commitment fixes the node count, so checked traces have as many states.
    let Some(i) = (1..a.states.len().min(b.states.len())).find(|&i| a.states[i] != b.states[i]) else {
        return Verdict::Agree { states: a.states.len() };
    };
    let node = i - 1;
    Verdict::Differ(FirstDifference {
        state: i,
        node,
        slot: a.inputs.len() + node,
        agreed: a.states[i - 1],
        state_a: a.states[i],
        state_b: b.states[i],
        output_a: a.nodes[node],
        output_b: b.nodes[node],
        differing_nodes: a.nodes.iter().zip(&b.nodes).filter(|(x, y)| x != y).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of `m` inputs and the given node outputs, with its states computed by hand:
    /// a slot vector updated one slot at a time, each state its root.
    fn trace(inputs: &[u8], nodes: &[u8]) -> Trace {
        let h = |b: u8| [b; 32];
        let (inputs, nodes): (Vec<Hash>, Vec<Hash>) =
            (inputs.iter().map(|&b| h(b)).collect(), nodes.iter().map(|&b| h(b)).collect());
        let len = (inputs.len() + nodes.len()).next_power_of_two();
        let mut slots = vec![[0u8; 32]; len];
        slots[..inputs.len()].copy_from_slice(&inputs);
        let mut states = vec![opml_merkle::leaves_root(&slots)];
        for (j, c) in nodes.iter().enumerate() {
            slots[inputs.len() + j] = *c;
            states.push(opml_merkle::leaves_root(&slots));
        }
        Trace { model: [9; 32], slot_len: len as u32, inputs, nodes, states }
    }

    #[test]
    fn the_first_differing_state_names_the_node_before_it() {
        let (a, b) = (trace(&[1], &[2, 3, 4, 5]), trace(&[1], &[2, 3, 7, 8]));
        check(&a).unwrap();
        check(&b).unwrap();
        let Verdict::Differ(d) = compare(&a, &b) else { panic!("{:?}", compare(&a, &b)) };
        assert_eq!((d.state, d.node, d.slot, d.differing_nodes), (3, 2, 3, 2));
        assert_eq!((d.output_a, d.output_b), ([4; 32], [7; 32]));
        assert_eq!((d.agreed, d.state_a, d.state_b), (a.states[2], a.states[3], b.states[3]));
        assert_eq!(compare(&a, &a), Verdict::Agree { states: 5 });
    }

    #[test]
    fn other_inputs_or_models_are_not_comparable() {
        let (a, b) = (trace(&[1, 2], &[3]), trace(&[1, 6], &[3]));
        assert_eq!(compare(&a, &b), Verdict::Inputs { input: 1, a: [2; 32], b: [6; 32] });
        let mut c = a.clone();
        c.model = [8; 32];
        assert_eq!(compare(&a, &c), Verdict::Models { a: [9; 32], b: [8; 32] });
    }

    #[test]
    fn a_state_that_does_not_follow_from_the_commitments_is_refused() {
        let mut t = trace(&[1], &[2, 3]);
        t.states[2] = [0; 32];
        assert_eq!(check(&t).unwrap_err(), "S_2 is not the root of its slot commitments");
        let mut t = trace(&[1], &[2, 3]);
        t.slot_len = 1 << 30;
        assert!(check(&t).unwrap_err().contains("expected 4"));
    }
}
