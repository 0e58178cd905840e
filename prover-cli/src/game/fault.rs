//! TEMPORARY SHIM (lead): replaced by h3-fault's implementation at merge.

use std::sync::Arc;

use opml_dnn::{Model, Tensor};
use opml_merkle::Hash;

use crate::game::{GameError, GraphView, VmView};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Output,
    Node(usize),
    Step { node: usize, step: u64 },
    ChallengeAll,
}

impl std::str::FromStr for Fault {
    type Err = GameError;
    fn from_str(s: &str) -> Result<Self, GameError> {
        let p: Vec<&str> = s.split(':').collect();
        let num = |x: &str| x.parse::<u64>().map_err(|_| GameError::Invalid(format!("bad spec {s}")));
        Ok(match p.as_slice() {
            ["output"] => Fault::Output,
            ["challenge-all"] => Fault::ChallengeAll,
            ["node", k] => Fault::Node(num(k)? as usize),
            ["step", k, st] => Fault::Step { node: num(k)? as usize, step: num(st)? },
            _ => return Err(GameError::Invalid(format!("bad spec {s}"))),
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Output => write!(f, "output"),
            Fault::Node(k) => write!(f, "node:{k}"),
            Fault::Step { node, step } => write!(f, "step:{node}:{step}"),
            Fault::ChallengeAll => write!(f, "challenge-all"),
        }
    }
}

impl Fault {
    pub fn is_submitter_fault(&self) -> bool {
        !matches!(self, Fault::ChallengeAll)
    }
}

#[derive(Clone, Debug)]
pub struct Run {
    graph: GraphView,
    depth: u32,
    fault: Option<Fault>,
}

impl Run {
    pub fn honest(model: Arc<Model>, model_root: Hash, inputs: &[Tensor], depth: u32) -> Result<Run, GameError> {
        Ok(Run { graph: GraphView::honest(model, model_root, inputs)?, depth, fault: None })
    }
    pub fn dishonest(
        model: Arc<Model>,
        model_root: Hash,
        inputs: &[Tensor],
        fault: &Fault,
        depth: u32,
    ) -> Result<Run, GameError> {
        let n = model.graph().nodes.len();
        let k = match fault {
            Fault::Node(k) => *k,
            _ => n - 1,
        };
        let honest = GraphView::honest(model.clone(), model_root, inputs)?;
        let lie = crate::game::graph::flip_byte(honest.node_output(k)?, 7)?;
        let graph = GraphView::lying(model, model_root, inputs, k, lie)?;
        Ok(Run { graph, depth, fault: Some(fault.clone()) })
    }
    pub fn graph(&self) -> &GraphView {
        &self.graph
    }
    pub fn graph_mut(&mut self) -> &mut GraphView {
        &mut self.graph
    }
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }
    pub fn lying_node(&self) -> Option<usize> {
        None
    }
    pub fn depth(&self) -> u32 {
        self.depth
    }
    pub fn vm_view(&self, node: usize) -> Result<VmView, GameError> {
        VmView::of_node(&self.graph, node, self.depth)
    }
}
