// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "../src/Handover.sol";
import {OptimisticML} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";
import {TestBase} from "./utils/Cheats.sol";

/// The actions forge's invariant runner calls at random: requests, claims (honest or lying),
/// challenges (honest or lying challengers), every game move, timeouts after warps,
/// finalizes, abandons, cancellations and withdrawals by several actors. Each action picks
/// its objects from the seeds it is given and keeps books of what it put in and took out.
contract GameHandler is GameFixture {
    uint256 internal constant ACTORS = 4;
    uint256 internal constant LIE_FROM = 1;

    struct ClaimRec {
        address submitter;
        bool honest;
        uint256 requestId;
    }

    struct GameRec {
        uint256 claimId;
        address challenger;
        bool honestChallenger;
    }

    struct RequestRec {
        address requester;
        uint256 fee;
    }

    // books
    uint256 public ghostIn;
    uint256 public ghostWithdrawn;
    uint256 public burnt0;
    uint256[] internal claimIds;
    uint256[] internal gameIds;
    uint256[] internal requestIds;
    mapping(uint256 => ClaimRec) internal claimRec;
    mapping(uint256 => GameRec) internal gameRec;
    mapping(uint256 => RequestRec) internal requestRec;
    // what happened (to check the runs reach deep into the game)
    mapping(bytes32 => uint256) public count;

    constructor() {
        // arity 3, 2^4 VM steps, a chain of 3 nodes
        setUpGame(3, 4, 3);
        for (uint256 i = 0; i < ACTORS; i++) {
            vm.deal(actor(i), 1_000_000 ether);
        }
        burnt0 = address(0).balance;
    }

    function gameAddress() external view returns (address) {
        return address(game);
    }

    function actor(uint256 seed) internal pure returns (address) {
        return address(uint160(0xA000 + (seed % ACTORS)));
    }

    function actorAt(uint256 i) external pure returns (address) {
        return actor(i);
    }

    function pickFrom(uint256[] storage ids, uint256 seed) internal view returns (uint256) {
        return ids.length == 0 ? 0 : ids[seed % ids.length];
    }

    // ------------------------------------------------------------------ the players' beliefs

    function claimOuts(uint256 claimId) internal view returns (bytes32[] memory) {
        if (claimRec[claimId].honest) return honestOuts();
        return divergentOuts(LIE_FROM, "lie", Handover.bytesRoot(lyingOutput()));
    }

    function challengerOuts(uint256 gameId) internal view returns (bytes32[] memory) {
        if (gameRec[gameId].honestChallenger) return honestOuts();
        return divergentOuts(0, "challenger lie", "challenger output");
    }

    function subStepView(uint256 gameId) internal view returns (StepView memory v) {
        uint256 claimId = gameRec[gameId].claimId;
        bytes32[] memory outs = claimOuts(claimId);
        uint256 node = gv(gameId).node;
        v = honestStepView(outs, node, defaultLeafStep());
        // the lying submitter's trace is wrong inside the VM from t + 1 on
        if (!claimRec[claimId].honest) v.atT1 = keccak256("wrong post");
    }

    function chalStepView(uint256 gameId) internal view returns (StepView memory) {
        StepView memory sub = subStepView(gameId);
        return gameRec[gameId].honestChallenger
            ? otherStepView(sub, vecPost, "honest")
            : otherStepView(sub, keccak256("challenger step lie"), "liar");
    }

    // ------------------------------------------------------------------ actions

    function warp(uint256 secs) public {
        vm.warp(block.timestamp + (secs % 2 hours));
    }

    function request(uint256 who, uint256 fee, bool withClaim) public {
        fee = fee % 1 ether;
        address a = actor(who);
        vm.prank(a);
        uint256 r = game.request{value: fee}(modelId, inputCommitments, address(0));
        ghostIn += fee;
        requestIds.push(r);
        requestRec[r] = RequestRec(a, fee);
        if (withClaim) claimOn(who + 1, true, r);
    }

    function cancelRequest(uint256 seed, uint256 secs) public {
        uint256 r = pickFrom(requestIds, seed);
        if (r == 0) return;
        vm.warp(block.timestamp + (secs % (2 * cfg.requestTimeout)));
        vm.prank(requestRec[r].requester);
        try game.cancelRequest(r) {
            count["cancel"]++;
        } catch {}
    }

    function postClaim(uint256 who, bool honest, uint256 requestSeed) public {
        claimOn(who, honest, requestSeed % 2 == 0 ? 0 : pickFrom(requestIds, requestSeed));
    }

    function claimOn(uint256 who, bool honest, uint256 r) internal {
        address a = actor(who);
        bytes memory out = honest ? outputBytes : lyingOutput();
        vm.prank(a);
        try game.postClaim{value: cfg.submitterBond}(
            modelId, r, inputCommitments, "", out, Handover.bytesRoot(out)
        ) returns (
            uint256 id
        ) {
            ghostIn += cfg.submitterBond;
            claimIds.push(id);
            claimRec[id] = ClaimRec(a, honest, r);
            count["claim"]++;
        } catch {}
    }

    /// A third of the time the latest claim (so that claims draw several challengers).
    function challenge(uint256 who, uint256 claimSeed, bool honestChallenger) public {
        uint256 c =
            claimSeed % 3 == 0 && claimIds.length > 0 ? claimIds[claimIds.length - 1] : pickFrom(claimIds, claimSeed);
        if (c == 0) return;
        address a = actor(who);
        vm.prank(a);
        try game.challenge{value: cfg.challengerBond}(c) returns (uint256 id) {
            ghostIn += cfg.challengerBond;
            gameIds.push(id);
            gameRec[id] = GameRec(c, a, honestChallenger);
            count["challenge"]++;
        } catch {}
    }

    /// The submitter's move, whatever the phase asks for (open, post or handover).
    function submitterMoves(uint256 gameSeed) public {
        submitterMove(pickFrom(gameIds, gameSeed));
    }

    /// Plays up to `moves % 24` moves of one game with both players' strategies (the
    /// challenger picking its first disagreement), resolving the leaf if reached.
    function play(uint256 gameSeed, uint256 moves) public {
        uint256 id = pickFrom(gameIds, gameSeed);
        if (id == 0) return;
        for (uint256 i = 0; i < moves % 24; i++) {
            G memory g = gv(id);
            if (g.phase == OptimisticML.Phase.Ended) return;
            if (claimVoided(gameRec[id].claimId)) {
                abandonGame(id);
                return;
            }
            if (g.phase == OptimisticML.Phase.Leaf) {
                try game.resolveStep(id, vecState, vecProof) {
                    count["resolve"]++;
                } catch {}
                return;
            }
            if (g.turn == OptimisticML.Side.Submitter) submitterMove(id);
            else challengerPick(id, 0);
        }
    }

    function submitterMove(uint256 id) internal {
        if (id == 0) return;
        G memory g = gv(id);
        if (g.turn != OptimisticML.Side.Submitter) return;
        uint256 claimId = gameRec[id].claimId;
        bytes32[] memory outs = claimOuts(claimId);
        address s = claimRec[claimId].submitter;
        if (g.phase == OptimisticML.Phase.Open) {
            bytes32 sn = graphStates(outs)[nodeCount];
            bytes32[] memory sib = outputSiblings(outs);
            vm.prank(s);
            try game.open(id, sn, sib) {
                count["open"]++;
            } catch {}
        } else if (g.phase == OptimisticML.Phase.Graph) {
            bytes32[] memory states = graphStatesToPost(id, graphStates(outs));
            vm.prank(s);
            try game.postStates(id, states) {
                count["post"]++;
            } catch {}
        } else if (g.phase == OptimisticML.Phase.Handover) {
            OptimisticML.HandoverProof memory p = handoverProof(outs, g.lo);
            vm.prank(s);
            try game.handover(id, p) {
                count["handover"]++;
            } catch {}
        } else if (g.phase == OptimisticML.Phase.Steps) {
            bytes32[] memory states = stepStatesToPost(id, subStepView(id));
            vm.prank(s);
            try game.postStates(id, states) {
                count["post"]++;
            } catch {}
        }
    }

    /// The challenger's pick: its first disagreement, or (odd seed) a random part.
    function challengerPicks(uint256 gameSeed, uint256 choice) public {
        challengerPick(pickFrom(gameIds, gameSeed), choice);
    }

    function challengerPick(uint256 id, uint256 choice) internal {
        if (id == 0) return;
        G memory g = gv(id);
        if (g.turn != OptimisticML.Side.Challenger || g.phase == OptimisticML.Phase.Leaf) return;
        if (g.phase != OptimisticML.Phase.Graph && g.phase != OptimisticML.Phase.Steps) return;
        bytes32[] memory states;
        bytes32[] memory belief;
        if (g.phase == OptimisticML.Phase.Graph) {
            states = graphStatesToPost(id, graphStates(claimOuts(gameRec[id].claimId)));
            belief = graphStatesToPost(id, graphStates(challengerOuts(id)));
        } else {
            states = stepStatesToPost(id, subStepView(id));
            belief = stepStatesToPost(id, chalStepView(id));
        }
        uint256 index = choice % 2 == 0 ? firstDisagreement(states, belief, bytes32(0)) : choice % (states.length + 1);
        vm.prank(gameRec[id].challenger);
        try game.pick(id, index, states) {
            count["pick"]++;
        } catch {}
    }

    function resolve(uint256 gameSeed) public {
        uint256 id = pickFrom(gameIds, gameSeed);
        if (id == 0) return;
        try game.resolveStep(id, vecState, vecProof) {
            count["resolve"]++;
        } catch {}
    }

    function timeout(uint256 gameSeed, uint256 secs) public {
        uint256 id = pickFrom(gameIds, gameSeed);
        if (id == 0) return;
        // mostly short waits, sometimes past a whole clock
        vm.warp(block.timestamp + (secs % 4 == 0 ? secs % (2 * cfg.clock) : secs % 1 hours));
        try game.timeout(id) {
            count["timeout"]++;
        } catch {}
    }

    function abandon(uint256 gameSeed) public {
        abandonGame(pickFrom(gameIds, gameSeed));
    }

    function abandonGame(uint256 id) internal {
        if (id == 0) return;
        try game.abandon(id) {
            count["abandon"]++;
        } catch {}
    }

    function finalize(uint256 claimSeed, uint256 secs) public {
        uint256 c = pickFrom(claimIds, claimSeed);
        if (c == 0) return;
        vm.warp(block.timestamp + (secs % (2 * cfg.challengeWindow)));
        try game.finalize(c) {
            count["finalize"]++;
        } catch {}
    }

    function withdraw(uint256 who) public {
        address a = actor(who);
        uint256 b = a.balance;
        vm.prank(a);
        try game.withdraw() {
            ghostWithdrawn += a.balance - b;
            count["withdraw"]++;
        } catch {}
    }

    // ------------------------------------------------------------------ books

    /// Bonds and fees the game must still hold, from the handler's records and the public
    /// state of each claim, game and request.
    function locked() public view returns (uint256 sum) {
        for (uint256 i = 0; i < claimIds.length; i++) {
            OptimisticML.ClaimView memory c = game.claimOf(claimIds[i]);
            if (!c.voided && !c.finalized) sum += cfg.submitterBond;
        }
        for (uint256 i = 0; i < gameIds.length; i++) {
            if (gv(gameIds[i]).phase == OptimisticML.Phase.Ended) continue;
            sum += cfg.challengerBond;
            // a game open on a voided claim also holds its share of the voided bond
            uint256 c = gameRec[gameIds[i]].claimId;
            if (game.claimOf(c).voided) sum += voidShare(gamesOpenAtVoiding(c));
        }
        for (uint256 i = 0; i < requestIds.length; i++) {
            (,,,, OptimisticML.RequestStatus status,,) = game.requests(requestIds[i]);
            if (status == OptimisticML.RequestStatus.Open) sum += requestRec[requestIds[i]].fee;
        }
    }

    /// The games that were open on the voided claim `claimId` when it was voided, from the
    /// games' public state: the voiding game, the games abandoned since and those still open.
    function gamesOpenAtVoiding(uint256 claimId) internal view returns (uint256 n) {
        n = 1;
        for (uint256 i = 0; i < gameIds.length; i++) {
            if (gameRec[gameIds[i]].claimId != claimId) continue;
            OptimisticML.GameView memory v = game.gameOf(gameIds[i]);
            if (v.phase != OptimisticML.Phase.Ended || v.endReason == OptimisticML.EndReason.Abandoned) n++;
        }
    }

    function credits() public view returns (uint256 sum) {
        for (uint256 i = 0; i < ACTORS; i++) {
            sum += game.credits(actor(i));
        }
    }

    function burnt() public view returns (uint256) {
        return address(0).balance - burnt0;
    }
}

/// Conservation under random play: the game's balance is what came in minus what went out,
/// by its own counters and by the handler's books, and equals the locked bonds and fees plus
/// the credits owed.
contract GameInvariantTest is TestBase {
    GameHandler internal handler;
    OptimisticML internal game;

    function setUp() public {
        handler = new GameHandler();
        game = OptimisticML(handler.gameAddress());
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    /// The handler's strategies reach every kind of move (a scripted run through its actions).
    function test_handlerReachesEveryMove() public {
        handler.postClaim(0, false, 0); // lying claim 1
        handler.postClaim(1, true, 0); // honest claim 2
        handler.challenge(2, 4, true); // honest challenger vs lying claim: game 1
        handler.challenge(3, 1, false); // lying challenger vs honest claim: game 2
        handler.challenge(3, 4, false); // lying challenger vs lying claim: game 3
        for (uint256 i = 0; i < 12; i++) {
            handler.submitterMoves(0);
            handler.challengerPicks(0, 0);
            handler.submitterMoves(1);
            handler.challengerPicks(1, 0);
        }
        handler.resolve(0);
        handler.resolve(1);
        assertEqUint(handler.count("resolve"), 2, "both leaves resolved");
        assertTrue(handler.count("handover") >= 2, "handovers");
        handler.abandon(2);
        assertEqUint(handler.count("abandon"), 1, "game 3 abandoned (claim 1 voided)");
        handler.request(0, 0.5 ether, true); // request 1 with claim 3
        handler.finalize(1, 1 hours + 1);
        handler.finalize(2, 0);
        assertEqUint(handler.count("finalize"), 2, "claim 2 and the request's claim finalized");
        handler.request(1, 0.2 ether, false);
        handler.cancelRequest(1, 3 days);
        assertEqUint(handler.count("cancel"), 1, "request cancelled");
        handler.postClaim(1, true, 0); // claim 4
        handler.challenge(0, 3, true); // game 4, never opened
        handler.timeout(3, 1 days + 4); // a multiple of 4: the long wait
        assertEqUint(handler.count("timeout"), 1, "timeout");
        for (uint256 i = 0; i < 4; i++) {
            handler.withdraw(i);
        }
        assertTrue(handler.count("withdraw") >= 3, "withdrawals");
        invariant_conservation();
        assertEqUint(address(game).balance, handler.locked(), "nothing owed after withdrawals");
    }

    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_conservation() public view {
        uint256 bal = address(game).balance;
        assertEqUint(bal, game.totalIn() - game.totalOut(), "balance == totalIn - totalOut");
        assertEqUint(game.totalIn(), handler.ghostIn(), "totalIn == what the actors paid in");
        assertEqUint(game.totalOut(), handler.ghostWithdrawn() + handler.burnt(), "totalOut == withdrawn + burnt");
        assertEqUint(bal, handler.locked() + handler.credits(), "balance == locked bonds and fees + credits");
    }
}
