"""Vocabulary and templates of the offline example provider (data only).

The offline provider is a labeled, deterministic stand-in for an LLM: it assembles
plausible domain text from these per-agent pools with seeded randomness. Templates
use ``{slot}`` placeholders (lowercase names); a slot is either a list below, a
dynamic value drawn by the provider (``version``, ``date``, ``ip``, ``price``,
``order``, ``pct``, ``count``, ``days``, ``hours``, ``first_name``), or ``topic``.
Code templates never contain ``{word}`` braces so they survive slot filling.

This module is larger than most because it is a table of text, not logic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Slots = Mapping[str, str]


@dataclass(frozen=True)
class ToolTemplate:
    """One tool an agent can call in a ``tool`` example."""

    name: str
    """Function name as the model would call it."""
    thought: str
    """Short assistant text that accompanies the call (slot template)."""
    arguments: Callable[[Slots], dict[str, object]]
    """Builds the call's arguments from the example's slots."""
    result: Callable[[Slots], dict[str, object]]
    """Builds the tool's JSON result from the example's slots."""


@dataclass(frozen=True)
class CodeTemplate:
    """A fenced code answer or a code_call body."""

    language: str
    """Fence language tag and code_call language."""
    code: str
    """Source with optional ``{slot}`` placeholders."""
    output: str = "ok"
    """What running it prints (used when the code is executed through a code_call)."""


@dataclass(frozen=True)
class Category:
    """A task category: what users ask about and what answers tend to say."""

    topics: tuple[str, ...]
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class AgentCorpus:
    """Everything the offline provider needs to write one agent's examples."""

    system: str
    categories: dict[str, Category]
    asks: tuple[str, ...]
    details: tuple[str, ...]
    sentences: tuple[str, ...]
    steps: tuple[str, ...]
    followups: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    kind_weights: tuple[float, float, float]
    """Probabilities of chat, code and tool examples."""
    code_asks: tuple[str, ...]
    code: tuple[CodeTemplate, ...]
    tools: tuple[ToolTemplate, ...]
    greeting: tuple[str, ...] = field(default=())


SHARED_SENTENCES: tuple[str, ...] = (
    "Before changing anything, it helps to agree on what a good outcome looks like and how we will measure it.",
    "I would write the decision down with its reasons, so the next person does not have to rediscover them.",
    "If the evidence disagrees with the plan, the evidence wins and we adjust the plan.",
    "There is a trade-off between speed and thoroughness here, and it is better to make it on purpose than by accident.",
    "Small, reversible changes are easier to review and much cheaper to undo.",
    "It is worth naming an owner for each open question, otherwise open questions tend to stay open.",
    "I would timebox the first pass to about {hours} hours and then decide whether more depth is worth it.",
    "The simplest explanation that fits all the facts is usually the right place to start.",
    "Please keep the affected people informed early; surprises cost more trust than delays.",
    "Where we are unsure, I would say so explicitly instead of guessing with confidence.",
    "A short checklist prevents most of the mistakes that happen under time pressure.",
    "We should check whether the same issue exists elsewhere, because patterns rarely appear only once.",
    "Any number we report should come with its source and the date it was measured.",
    "The goal is a result that someone else can verify without asking us how we got there.",
    "I would prefer one clear recommendation over a long list of equally weighted options.",
    "Once this is settled, a brief retrospective will tell us what to keep doing next time.",
)

OPENERS: tuple[str, ...] = (
    "Here is how I would approach {topic}.",
    "Good question. For {topic}, I would focus on a few things in order.",
    "Let me break {topic} down into manageable parts.",
    "Short version: {topic} is manageable if we are deliberate about the order of work.",
    "Thanks for the context on {topic}; here is my recommendation.",
    "I looked at {topic} and this is where I would start.",
)

CLOSERS: tuple[str, ...] = (
    "Let me know if you want me to turn this into tickets.",
    "I can draft the next step as soon as you confirm the scope.",
    "Happy to go deeper on any of these points.",
    "If anything here does not match what you are seeing, send me the details and I will adjust.",
    "That should give us a solid starting point.",
    "Tell me which of these you want first and I will get going.",
)

SHORT_ANSWERS: tuple[str, ...] = (
    "Yes, {topic} looks fine to me.",
    "Done. I checked {topic} and nothing stands out.",
    "No action needed on {topic} for now.",
    "Agreed, go ahead with {topic}.",
    "I will look at {topic} tomorrow.",
)

FIRST_NAMES: tuple[str, ...] = (
    "maria", "john", "aiko", "lukas", "priya", "omar", "sofia", "chen", "fatima", "diego",
    "emma", "kwame", "ingrid", "ravi", "lea", "tomasz",
)
LAST_NAMES: tuple[str, ...] = (
    "keller", "smith", "tanaka", "novak", "sharma", "haddad", "rossi", "wang", "okafor",
    "garcia", "berg", "mensah", "dubois", "kowalski", "silva", "murphy",
)
EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com", "example.org", "mail.example.net", "northwind.example", "contoso.example",
)

PII_USER_SENTENCES: tuple[str, ...] = (
    "You can reach me at {email} if the chat drops.",
    "My direct line is {phone}, in case a call is quicker.",
    "Please copy {email} on your reply.",
    "Call me on {phone} after five, or write to {email}.",
)
PII_ANSWER_SENTENCES: tuple[str, ...] = (
    "For follow-up questions you can contact the coordinator directly at {email}.",
    "The on-call contact for this week is reachable on {phone}.",
)

NEAR_DUP_PREFIXES: tuple[str, ...] = ("Quick question: ", "Following up: ", "One more thing: ", "Sorry to bother you, ")
NEAR_DUP_SWAPS: tuple[tuple[str, str], ...] = (
    (" would ", " will "), (" first ", " initially "), (" check ", " verify "),
    (" important ", " essential "), (" quickly ", " fast "), (" usually ", " often "),
    (" help ", " assist "), (" clear ", " plain "), (" start ", " begin "), (" need ", " require "),
)

_QA = AgentCorpus(
    system="You are the QA agent of a software delivery team. You design test plans, triage defects and judge release readiness from evidence. Answer precisely, name the checks you would run and flag risks plainly.",
    categories={
        "test_design": Category(
            ("the password reset flow", "bulk CSV import", "coupon stacking rules",
             "the new pagination API", "two-factor enrollment", "the file upload limits"),
            ("Boundary values matter most here: empty input, exactly the limit, one past the limit and a very large payload.",
             "I would split the cases into happy path, validation errors, permission checks and concurrency, then add one exploratory charter per area.",
             "Each case should state its precondition, the single action and the observable result so anyone can rerun it.")),
        "bug_triage": Category(
            ("intermittent 502 errors on the {component}", "duplicate emails after signup",
             "a crash when the locale is tr-TR", "wrong totals in the monthly invoice",
             "sessions expiring early on mobile", "a memory leak in the {component}"),
            ("Severity follows user impact and priority follows how soon we can act; keeping the two apart avoids endless debates.",
             "The first job is a reliable reproduction, even if it only fails one run in ten.",
             "I would attach the request id, the build number and the exact time range so the owning team can correlate logs.")),
        "regression_analysis": Category(
            ("the search ranking change", "the upgrade to the new ORM", "the cache eviction tweak",
             "the refactor of the {component}", "the dependency bump to {version}", "last night's failed deploy"),
            ("Comparing the last green build with the first red one narrows the change set quickly.",
             "A bisect over the merged pull requests is cheaper than reading every diff by hand.",
             "Performance regressions need a baseline from the same hardware, otherwise the noise hides a ten percent slowdown.")),
        "test_automation": Category(
            ("end-to-end checkout tests", "API contract tests", "visual regression checks",
             "load tests for the {component}", "the flaky login suite", "smoke tests after each deploy"),
            ("Tests that sleep for a fixed time are the usual source of flakiness; waiting on an explicit condition fixes most of them.",
             "Keep test data factories next to the tests so a schema change breaks loudly in one place.",
             "Run the fast unit layer on every push and the slow end-to-end layer on merge, so feedback stays under ten minutes.")),
        "release_readiness": Category(
            ("release {version}", "the Friday hotfix", "the app store submission",
             "the database migration scheduled for {date}", "the feature flag rollout of the {component}", "the quarterly release train"),
            ("Open blockers, the escaped-defect trend and the rollback plan decide go or no-go, not the number of tests executed.",
             "I would ask for a staged rollout with an error-budget trigger that rolls back automatically.",
             "Every known issue that ships needs an owner, a workaround and a line in the release notes.")),
    },
    asks=("Can you help me with {topic}?", "What is your plan for {topic}?",
          "We need a QA view on {topic}. Where should we start?", "How would you test {topic} before we ship?"),
    details=("The build under test is {version} on {env}.", "We saw the first report on {date} from a client behind {ip}.",
             "Roughly {pct}% of runs fail and nobody has a clean reproduction yet.",
             "The change touches the {component} and was merged {days} days ago.",
             "Order {order} is the one support escalated.", "The invoice that came out wrong totals {price}."),
    sentences=(
        "I would start by writing down what must never happen, because those invariants become the highest-priority checks.",
        "For the {component}, the riskiest area is {risk}, so that deserves a dedicated test.",
        "A tool like {tool} fits here because it runs in CI and gives readable failure output.",
        "Tracking {metric} over the last {count} builds tells us whether things are improving or just moving around.",
        "I would run the suite on {env} first, since it mirrors the production configuration most closely.",
        "A failing test should explain itself: the assertion message needs the expected value, the actual value and the input.",
        "If a defect cannot be reproduced after {hours} hours of focused effort, I would add logging and move on rather than block the release.",
        "Negative tests are often skipped, yet they catch most of the defects customers actually report.",
        "I would pair with {team} for half an hour to confirm the intended behaviour before writing assertions.",
        "Exploratory sessions with a clear charter and a strict time box find issues that scripted cases miss.",
        "The test report should separate product defects from environment failures, otherwise the numbers mislead.",
        "Coverage on changed lines is a useful signal, but a test without a meaningful assertion adds nothing.",
        "Mocks are fine at the edges; in the middle of the system they hide exactly the integration bugs we care about.",
        "When {metric} moves by more than {pct}%, I would treat it as a signal and investigate before release.",
        "Reproducing with production-like volumes matters, because several past incidents only appeared above {count} records.",
        "Each bug report I file includes build {version}, the environment and the minimal steps to reproduce.",
        "Accessibility deserves a pass as well: keyboard navigation and screen-reader labels often regress silently.",
        "I would keep the regression pack small and fast, and retire tests that have not failed in a year.",
        "Clock and timezone handling need an explicit case, since {risk} has bitten this codebase before.",
        "The acceptance criteria in the ticket are the contract; anything beyond them goes into a follow-up.",
    ),
    steps=("Reproduce the issue on {env} with build {version}.", "List the invariants and turn each into one automated check.",
           "Add boundary and negative cases for every input field.", "Run the suite three times to flush out flaky tests.",
           "Compare {metric} against the previous release.", "Write up findings with evidence and a clear recommendation.",
           "Agree on the rollback trigger with {team}.", "Fix or retire any test that failed without a product change."),
    followups=("Thanks. What would you automate first?", "Good. How do we know when we are done testing?",
               "What if we only have {days} days before the release?"),
    slots={
        "component": ("checkout service", "login flow", "search indexer", "payment webhook handler", "notification worker",
                      "report exporter", "mobile sync client", "admin dashboard", "rate limiter", "upload API"),
        "tool": ("pytest", "Playwright", "k6", "Postman", "Cypress", "Locust", "Hypothesis"),
        "env": ("staging", "the pre-prod cluster", "the nightly environment", "a local docker-compose stack"),
        "team": ("the payments squad", "the platform team", "the mobile team", "the growth team", "the data platform team"),
        "risk": ("data loss on retry", "a race between two writers", "silent truncation of long inputs",
                 "timezone drift in scheduled jobs", "stale cache entries after deploys", "an unbounded retry loop"),
        "metric": ("p95 latency", "the error rate", "the flaky-test rate", "the defect escape rate", "mean time to detect"),
        "suite": ("smoke", "regression", "checkout-e2e", "api-contract", "nightly-full"),
    },
    kind_weights=(0.55, 0.30, 0.15),
    code_asks=("Could you write an automated test for {topic}?", "Please write a pytest check for {topic}.",
               "Can you give me a parametrized test that covers {topic}?"),
    code=(
        CodeTemplate("python", 'import pytest\n\n\n@pytest.mark.parametrize("quantity, expected", [(0, 400), (1, 200), (999, 200), (1000, 400)])\ndef test_quantity_boundaries(client, quantity, expected):\n    response = client.post("/api/cart/items", json={"sku": "SKU-1", "quantity": quantity})\n    assert response.status_code == expected, response.text', "4 passed in 0.42s"),
        CodeTemplate("python", 'def test_reset_link_expires(client, clock, mailbox):\n    client.post("/password/reset", json={"user": "tester"})\n    link = mailbox.last_link()\n    clock.advance(hours=25)\n    response = client.get(link)\n    assert response.status_code == 410\n    assert "expired" in response.json()["detail"]', "1 passed in 0.31s"),
        CodeTemplate("python", 'import time\n\n\ndef wait_until(predicate, timeout=10.0, step=0.1):\n    deadline = time.monotonic() + timeout\n    while time.monotonic() < deadline:\n        if predicate():\n            return True\n        time.sleep(step)\n    raise AssertionError("condition not met within timeout")', "ok"),
    ),
    tools=(
        ToolTemplate("run_test_suite", "I will run the {suite} suite against the release branch first.",
                     lambda s: {"suite": s["suite"], "branch": f"release/{s['version']}"},
                     lambda s: {"passed": 200 + int(s["count"]) % 300, "failed": int(s["pct"]) % 7, "flaky": 1,
                                "duration_s": 60 + int(s["count"]) % 500}),
        ToolTemplate("search_issues", "Let me check the tracker for related reports.",
                     lambda s: {"query": s["component"], "status": "open"},
                     lambda s: {"total": int(s["pct"]) % 9 + 1, "oldest": s["date"], "labels": ["regression", "needs-repro"]}),
    ),
)

_SUPPORT = AgentCorpus(
    system="You are the customer support agent of an online electronics retailer. You resolve account, billing, order and technical issues with empathy, follow policy and escalate when needed.",
    categories={
        "account_access": Category(
            ("a locked account after too many login attempts", "a lost two-factor device", "an email change request",
             "a suspicious login alert", "a password reset link that never arrives"),
            ("For security reasons I can only change login details after we verify the account holder.",
             "Locked accounts unlock automatically after thirty minutes, but I can speed that up once identity is confirmed.",
             "If the reset email is missing, the spam folder and any mail filtering rules are the first places to look.")),
        "billing_dispute": Category(
            ("a double charge of {price}", "a refund that has not arrived", "an unexpected renewal of the {plan} plan",
             "a coupon that was not applied", "a charge in the wrong currency"),
            ("Pending authorisations often look like a second charge, and they drop off within three to five business days.",
             "Refunds go back to the original payment method and banks typically need five to ten business days to post them.",
             "If the renewal was unwanted and unused, our policy allows a full refund within fourteen days.")),
        "troubleshooting": Category(
            ("{product} not connecting to Wi-Fi", "the app crashing on startup", "firmware update {version} failing",
             "slow sync between devices", "a blank screen after the update"),
            ("A full power cycle clears most connection problems, so unplug the device for thirty seconds before anything else.",
             "Most startup crashes after an update disappear once the app cache is cleared and the app is reinstalled.",
             "If the update keeps failing, installing it over a wired connection avoids the timeout we see on weak Wi-Fi.")),
        "order_status": Category(
            ("order {order} stuck in transit", "a missing item from order {order}", "a delivery to the wrong address",
             "a delayed pre-order", "a damaged package"),
            ("Tracking can pause for a day or two at the regional hub; after three days without a scan we open a carrier trace.",
             "When an item is missing, we check the packing weight first, which usually settles the question within a day.",
             "For damaged deliveries, a photo of the box and the item lets us send a replacement without a return.")),
        "escalation_handling": Category(
            ("a customer threatening a chargeback", "a repeat complaint about the same fault",
             "a safety concern about {product}", "a public complaint on social media", "a third contact about the same issue"),
            ("Acknowledging the frustration first, without excuses, lowers the temperature of the conversation.",
             "Safety reports go straight to the product safety team, and we ask the customer to stop using the device.",
             "A named case owner who calls back at an agreed time resolves repeat contacts faster than another ticket.")),
    },
    asks=("Hi, I need help with {topic}.", "Can you sort out {topic} for me?",
          "A customer wrote in about {topic}. How should we respond?", "What is the right process for {topic}?"),
    details=("The order number is {order} and it was placed on {date}.", "The amount in question is {price}.",
             "They are on the {plan} plan and have been a customer for {count} days.",
             "The device runs firmware {version}.", "The last successful login came from {ip}."),
    sentences=(
        "I am sorry for the trouble this has caused, and I will make sure we get it resolved.",
        "According to {policy}, this case qualifies, so there is no need to argue the point with the customer.",
        "I would reply through {channel}, because that is where the customer started the conversation.",
        "Before promising anything, I would confirm the details in the order system so our answer is accurate.",
        "If the first fix does not work, {team} can take over with the notes we already have.",
        "It helps to summarise what we did and what happens next, with a realistic time frame.",
        "Customers on the {plan} plan get priority handling, so the case should be answered within {hours} hours.",
        "I would avoid technical jargon and give one clear instruction at a time.",
        "Offering a small goodwill credit is reasonable here, but it should not replace fixing the actual problem.",
        "We should log the root cause in the case, so recurring problems with {product} show up in the weekly report.",
        "If the customer mentions legal action, the case goes to {team} and we stop negotiating ourselves.",
        "A follow-up message after {days} days confirms the fix held and often turns a complaint into a good review.",
        "The macro for this situation is a good start, but it needs a personal first line to not feel automated.",
        "I would double-check the shipping address on file, because typos there cause many of these tickets.",
        "When several customers report the same thing within an hour, I would flag a possible incident to {team}.",
        "Refund decisions above {price} need a supervisor approval, which usually takes less than a day.",
        "Please keep internal notes factual and free of opinions, since customers can request their case history.",
        "Our satisfaction survey goes out automatically once the case is closed, so closing it properly matters.",
    ),
    steps=("Verify the customer's identity with two account details.", "Check the order and payment history for the case.",
           "Apply the fix or the policy exception and note it in the case.", "Tell the customer what happens next and when.",
           "Escalate to {team} if it is not resolved within {hours} hours.", "Send a follow-up after {days} days.",
           "Tag the case so the weekly report counts it.", "Close the case with a short summary."),
    followups=("Thanks, that helps. What if they are still unhappy?", "Okay. Should we offer a credit as well?",
               "And if the issue comes back in {days} days?"),
    slots={
        "product": ("the Aero 3 laptop", "the wireless headset", "the smart thermostat", "the standing desk",
                    "the 4K monitor", "the robot vacuum"),
        "plan": ("Basic", "Plus", "Business"),
        "channel": ("chat", "email", "the phone queue"),
        "team": ("the billing team", "logistics", "tier 2 technical support", "trust and safety", "a supervisor"),
        "policy": ("the 30-day return policy", "the price-match policy", "the warranty terms", "the refund policy"),
    },
    kind_weights=(0.70, 0.10, 0.20),
    code_asks=("Can you give me the command to check {topic} from the terminal?",
               "Is there a script the tier 2 team can use for {topic}?"),
    code=(
        CodeTemplate("bash", "curl -s -H 'Accept: application/json' https://status.example.com/api/v2/components.json | jq '.components[] | select(.status != \"operational\")'", "[]"),
        CodeTemplate("bash", "ping -c 4 192.168.1.1\nnslookup updates.example.com\ntraceroute -m 15 updates.example.com", "4 packets transmitted, 4 received"),
    ),
    tools=(
        ToolTemplate("lookup_order", "Let me pull up the order first.",
                     lambda s: {"order_id": s["order"]},
                     lambda s: {"order_id": s["order"], "status": "in_transit", "carrier": "DHL", "last_scan": s["date"],
                                "total": s["price"]}),
        ToolTemplate("check_service_status", "I will check whether there is a known outage.",
                     lambda s: {"region": "eu-west", "service": "device-sync"},
                     lambda s: {"status": "degraded", "incident_started": s["date"], "affected_pct": int(s["pct"])}),
    ),
    greeting=("Hi {first_name},", "Hello {first_name},", "Thanks for reaching out, {first_name}."),
)

_LEGAL = AgentCorpus(
    system="You are the legal operations agent of a technology company. You review contracts, check compliance and explain legal risk in plain language. You do not give final legal advice; you flag issues for counsel.",
    categories={
        "contract_review": Category(
            ("{contract}", "the renewal terms in {contract}", "a redline from the customer's counsel",
             "the liability cap in {contract}", "a one-sided termination clause"),
            ("A liability cap tied to fees paid in the previous twelve months is market standard for this kind of deal.",
             "Mutual obligations should really be mutual; a one-way confidentiality clause is a common drafting slip.",
             "Definitions drive everything else, so I would review them before the operative clauses.")),
        "compliance_check": Category(
            ("our {regulation} obligations", "the vendor's {regulation} posture", "record retention under {regulation}",
             "the audit evidence for {regulation}", "cross-border data transfers"),
            ("A documented control with evidence of operation is worth more than a policy nobody follows.",
             "Transfers outside the region need a valid mechanism, such as standard contractual clauses, plus a transfer assessment.",
             "Retention periods should be justified by purpose, not set to forever by default.")),
        "privacy_policy": Category(
            ("the cookie banner", "the privacy notice update", "a data subject access request",
             "the children's data section", "consent for marketing emails"),
            ("A privacy notice has to match what the product actually does, so I would compare it against the data map.",
             "Access requests have a one-month deadline, which can be extended only in limited cases.",
             "Pre-ticked boxes are not valid consent, so the marketing opt-in needs an affirmative action.")),
        "ip_licensing": Category(
            ("an open-source license in the dependency tree", "the contributor agreement", "a trademark question about our logo",
             "licensing third-party images", "ownership of work made by contractors"),
            ("Copyleft licenses matter when we distribute the software, so the deployment model changes the answer.",
             "Contractor agreements need an explicit assignment of intellectual property, not just a confidentiality clause.",
             "Attribution requirements are easy to meet if we keep a generated notices file in each release.")),
        "risk_assessment": Category(
            ("the new AI feature", "entering the {jurisdiction} market", "a vendor with weak security terms",
             "a pending customer dispute", "the change to our refund terms"),
            ("I would rate each risk by likelihood and impact, and name a mitigation and an owner for the top three.",
             "The residual risk after mitigation is what leadership actually has to accept.",
             "Insurance can cover some of this exposure, but it rarely covers regulatory fines.")),
    },
    asks=("Could you review {topic}?", "What are the main risks in {topic}?",
          "We need a quick legal read on {topic} before Friday.", "How should we handle {topic}?"),
    details=("The draft is version {version}, dated {date}.", "The contract value is {price} per year.",
             "The counterparty wants signature within {days} days.", "It is governed by the law of {jurisdiction}.",
             "The related purchase order is {order}.", "The data room is hosted internally at {ip}."),
    sentences=(
        "The clause on {clause} is the one I would focus on, because it shifts most of the risk to us.",
        "Under {regulation}, we need a documented basis for this processing and a record of it.",
        "I would ask {party} for a mutual version of the {clause} clause rather than rejecting it outright.",
        "The governing law of {jurisdiction} is acceptable, but the venue should be convenient for us as well.",
        "This is a flag for counsel, not a final opinion, and the business owner should weigh the commercial side.",
        "A side letter is a poor place for important terms, because it gets lost when the contract is renewed.",
        "Auto-renewal with a {days}-day notice window is easy to miss, so the date should go into the contract calendar.",
        "The indemnity should be capped and limited to third-party claims, not every loss {party} might suffer.",
        "I would keep a short issues list with our position, the fallback and the walk-away point for each item.",
        "If {party} refuses the change, the fallback is to narrow the scope of the obligation.",
        "Personal data flows should be listed in an annex so the obligations under {regulation} are concrete.",
        "A termination for convenience right helps us, but it should come with a reasonable notice period.",
        "The warranty disclaimer is standard, though it cannot exclude liability that the law does not allow to be excluded.",
        "I would check that the signatory on the other side actually has authority to bind the company.",
        "Audit rights are reasonable if they are limited to once a year with {days} days of notice.",
        "Keeping a clean record of approvals protects the team if the decision is questioned later.",
        "Subprocessors need the same data protection terms that we accepted from {party}.",
        "The breach notification window should be specific, such as seventy-two hours, rather than without undue delay.",
    ),
    steps=("Read the definitions and the scope of services.", "Mark every clause on {clause} and liability.",
           "Compare the terms with our standard position.", "Draft a short issues list with fallbacks.",
           "Check the data protection annex against {regulation}.", "Confirm the renewal and notice dates.",
           "Send the redline to {party} with a brief cover note.", "Record the approval in the contract system."),
    followups=("Thanks. Which of these is a deal breaker?", "What would you accept as a fallback?",
               "Can we sign in {days} days if they refuse the changes?"),
    slots={
        "contract": ("the master services agreement", "the data processing addendum", "the reseller agreement",
                     "the SaaS subscription terms", "the NDA with the supplier"),
        "regulation": ("GDPR", "CCPA", "the EU AI Act", "PCI DSS", "SOC 2", "HIPAA"),
        "clause": ("limitation of liability", "indemnification", "termination for convenience", "auto-renewal",
                   "governing law", "assignment"),
        "party": ("the vendor", "the customer", "the reseller", "the processor"),
        "jurisdiction": ("Delaware", "England and Wales", "Ireland", "Singapore", "Ontario"),
    },
    kind_weights=(0.80, 0.05, 0.15),
    code_asks=("Can you write a small script that finds {topic} across our contract exports?",),
    code=(
        CodeTemplate("python", 'import re\nfrom pathlib import Path\n\nRENEWAL = re.compile(r"automatically renew", re.IGNORECASE)\n\nfor path in sorted(Path("contracts").glob("*.txt")):\n    text = path.read_text(encoding="utf-8")\n    if RENEWAL.search(text):\n        print(path.name)', "msa_acme.txt\nreseller_v2.txt"),
    ),
    tools=(
        ToolTemplate("search_clauses", "I will pull the relevant clauses from the contract repository.",
                     lambda s: {"contract": s["contract"], "clause_type": s["clause"]},
                     lambda s: {"matches": 2, "sections": ["9.1", "9.3"], "last_amended": s["date"]}),
        ToolTemplate("get_regulation_summary", "Let me fetch the summary of the relevant obligations.",
                     lambda s: {"regulation": s["regulation"], "topic": "data transfers"},
                     lambda s: {"regulation": s["regulation"], "articles": ["44", "46"], "updated": s["date"]}),
    ),
)

_ANALYST = AgentCorpus(
    system="You are the data analyst agent of a subscription business. You answer questions with data, state your assumptions, show the query or method and quantify uncertainty.",
    categories={
        "metric_analysis": Category(
            ("the drop in {metric}", "why {metric} spiked last week", "{metric} by region",
             "the definition of {metric}", "{metric} for {segment}"),
            ("A metric definition should say what is counted, over which window and what is excluded.",
             "Before explaining a change, I would rule out tracking and pipeline problems.",
             "Breaking the change down by segment usually shows that one group explains most of it.")),
        "forecasting": Category(
            ("next quarter's revenue", "{metric} for the holiday season", "support ticket volume",
             "infrastructure cost for next year", "the hiring plan's capacity needs"),
            ("A forecast without an interval is a guess with false confidence, so I report a range.",
             "Seasonality dominates this series, so a seasonal naive baseline is the model to beat.",
             "I would backtest on the last four quarters before trusting any model.")),
        "cohort_analysis": Category(
            ("retention of {segment}", "the March signup cohort", "customers acquired through paid search",
             "users who tried the new onboarding", "annual versus monthly subscribers"),
            ("Cohorts should be defined by signup date, not by first purchase, unless the question is about buyers.",
             "Retention curves flatten after a few months; the level they flatten at matters most.",
             "Small cohorts are noisy, so I would pool weeks into months before comparing them.")),
        "ab_test_readout": Category(
            ("the pricing page experiment", "the new checkout button test", "the onboarding email test",
             "the free trial length experiment", "the recommendation widget test"),
            ("The test was sized for a minimum detectable effect, and reading it early inflates false positives.",
             "Sample ratio mismatch is the first check; if the split is off, the result cannot be trusted.",
             "I would report the effect with a confidence interval and the practical significance, not only a p-value.")),
        "data_quality": Category(
            ("duplicate rows in the {table} table", "missing events from the mobile app", "late-arriving data in {table}",
             "a broken join between {table} and accounts", "timezone errors in {table}"),
            ("Row counts per day compared with the source system catch most pipeline gaps early.",
             "Uniqueness and not-null checks on keys are cheap and prevent silent double counting.",
             "I would quarantine bad rows instead of deleting them, so the fix can be audited.")),
    },
    asks=("Can you look into {topic}?", "What does the data say about {topic}?",
          "I need an analysis of {topic} for the leadership review.", "How confident are we about {topic}?"),
    details=("The dashboard was last refreshed on {date}.", "The experiment ran for {days} days with {count} users per arm.",
             "The warehouse host is {ip} if you need direct access.", "Revenue per account is around {price}.",
             "The model version in production is {version}.", "Order {order} shows up twice in the export."),
    sentences=(
        "I would define {metric} precisely before computing anything, because teams often use different versions of it.",
        "Looking at {segment} separately shows whether the overall change is broad or concentrated.",
        "I would use {method} here, since it matches the question and the amount of data we have.",
        "The {table} table is the source of truth for this, but it needs deduplication first.",
        "The change is about {pct}%, which is within normal weekly variation, so I would not call it a trend yet.",
        "A chart with the raw series and a rolling average tells the story better than a single number.",
        "Correlation here is not causation; a holdout or an experiment would settle the question.",
        "I would state the assumptions in one short paragraph so readers can challenge them.",
        "With about {count} observations, the confidence interval is still wide, and the report should say so.",
        "Seasonality matters, so I compare against the same week last year rather than last week.",
        "Outliers should be investigated, not silently removed, because they are sometimes the real story.",
        "I would check the join keys between {table} and the accounts table, since mismatches inflate totals.",
        "If we slice the data many ways, we need to correct for multiple comparisons or we will find noise.",
        "The query and the notebook go into the repository so the numbers can be reproduced next month.",
        "A sensible decision threshold is agreed before looking at the results, not after.",
        "For leadership, I would lead with the answer and keep the method in an appendix.",
        "Missing data is not random here, so simply dropping incomplete rows would bias {metric}.",
        "I would flag that the tracking change on {date} breaks comparability with earlier weeks.",
    ),
    steps=("Write down the exact question and the decision it informs.", "Define {metric} and the time window.",
           "Pull the data from the {table} table and run quality checks.", "Apply {method} and compute intervals.",
           "Break the result down by segment.", "Check the result against a simple baseline.",
           "Write a one-page summary with the recommendation.", "Commit the query and notebook for reproducibility."),
    followups=("Thanks. How sure are you about this?", "What would change your conclusion?",
               "Can you redo it for the last {days} days only?"),
    slots={
        "metric": ("weekly active users", "net revenue retention", "conversion rate", "churn rate",
                   "average order value", "trial-to-paid conversion"),
        "segment": ("new customers", "the enterprise tier", "mobile users", "customers in EMEA", "the March cohort"),
        "table": ("events", "orders", "subscriptions", "sessions", "invoices"),
        "method": ("a difference-in-differences comparison", "a simple linear trend", "a seasonal naive baseline",
                   "a bootstrap confidence interval", "a two-proportion z-test"),
    },
    kind_weights=(0.45, 0.35, 0.20),
    code_asks=("Can you write the query for {topic}?", "Please give me the pandas code for {topic}.",
               "What SQL would you run to check {topic}?"),
    code=(
        CodeTemplate("sql", "SELECT date_trunc('week', created_at) AS week,\n       count(DISTINCT account_id) AS active_accounts\nFROM events\nWHERE created_at >= now() - interval '12 weeks'\nGROUP BY 1\nORDER BY 1;", "12 rows"),
        CodeTemplate("python", 'import pandas as pd\n\norders = pd.read_parquet("orders.parquet")\ncohort = orders.groupby(orders["signup_date"].dt.to_period("M"))\nretention = cohort["account_id"].nunique()\nprint(retention.tail(6))', "signup_date\n2024-01    1812\n2024-02    1744"),
        CodeTemplate("sql", "SELECT order_id, count(*) AS copies\nFROM orders\nGROUP BY order_id\nHAVING count(*) > 1\nORDER BY copies DESC\nLIMIT 20;", "3 rows"),
    ),
    tools=(
        ToolTemplate("run_sql", "I will run a quick query to size this.",
                     lambda s: {"query": f"SELECT count(*) FROM {s['table']} WHERE created_at >= '{s['date']}'"},
                     lambda s: {"rows": 1, "count": int(s["count"]) * 37, "elapsed_ms": 240 + int(s["pct"])}),
        ToolTemplate("get_metric", "Let me fetch the metric series from the dashboard API.",
                     lambda s: {"metric": s["metric"], "start": s["date"], "granularity": "week"},
                     lambda s: {"metric": s["metric"], "points": 12, "latest": round(int(s["pct"]) * 1.7, 1),
                                "change_pct": -int(s["pct"]) % 9}),
    ),
)

_CONTENT = AgentCorpus(
    system="You are the content agent of a B2B software company. You draft and edit blog posts, product copy and email campaigns in a clear, friendly voice that follows the style guide.",
    categories={
        "blog_draft": Category(
            ("a post about {keyword}", "a customer story for {audience}", "a launch post for {product}",
             "a how-to article on {keyword}", "an opinion piece on remote teams"),
            ("A strong post opens with the reader's problem, not with our company history.",
             "Subheadings every few paragraphs help readers who skim, which is most of them.",
             "One concrete example beats three abstract claims.")),
        "product_copy": Category(
            ("the landing page for {product}", "feature descriptions for the pricing page", "onboarding tooltips",
             "the app store listing", "release notes for version {version}"),
            ("Benefits come first and features second; readers care about what changes for them.",
             "Button labels should say what happens next, such as Start free trial, not Submit.",
             "Every claim on the page should be something support can stand behind.")),
        "email_campaign": Category(
            ("a win-back email for inactive users", "the launch announcement for {product}", "a renewal reminder",
             "a webinar invitation for {audience}", "a three-part onboarding sequence"),
            ("The subject line and the preview text work as a pair, so I write them together.",
             "One email, one call to action; a second link splits attention and lowers clicks.",
             "Sending on {date} avoids the holiday dip we saw last year.")),
        "seo_brief": Category(
            ("the keyword {keyword}", "a pillar page on {keyword}", "refreshing our top ten posts",
             "a comparison page against competitors", "internal linking for the blog"),
            ("Search intent decides the format: a how-to query wants steps, a comparison query wants a table.",
             "Refreshing an old post that already ranks is often faster than writing a new one.",
             "The title tag should carry the main keyword early and stay under sixty characters.")),
        "editing_review": Category(
            ("a draft from the product team", "the tone of our help center", "a guest post submission",
             "the about page", "a press release draft"),
            ("Cutting a third of the words usually makes a draft clearer without losing anything.",
             "Passive voice hides who does what, so I rewrite it wherever the actor matters.",
             "Consistent terminology matters; the same feature should not have three names.")),
    },
    asks=("Can you help with {topic}?", "Please draft {topic}.", "What would you change about {topic}?",
          "We need {topic} by Thursday. Where do we start?"),
    details=("The audience is {audience}.", "Launch is planned for {date} with version {version}.",
             "The plan costs {price} per seat per month.", "Last quarter the newsletter reached {count} readers.",
             "The tone should be {tone}.", "The preview site runs at {ip} until launch.",
             "The test purchase for the launch flow was order {order}."),
    sentences=(
        "For {audience}, the main question is what this saves them in time or money, so I would lead with that.",
        "I would keep the tone {tone} and avoid jargon unless the audience uses it themselves.",
        "The headline should promise one specific outcome that the rest of the piece delivers.",
        "A short customer quote adds credibility that our own claims cannot.",
        "I would publish on {channel} first and adapt the piece for other channels afterwards.",
        "Every paragraph should earn its place; if it does not move the reader forward, it goes.",
        "The call to action belongs near the top as well as at the end, for readers who are already convinced.",
        "Our style guide prefers sentence case in headings and no exclamation marks in product copy.",
        "I would test two subject lines on a small share of the list before sending to everyone.",
        "Numbers make claims concrete, for example a {pct}% faster setup, as long as we can back them up.",
        "The keyword {keyword} should appear naturally in the title, the first paragraph and one subheading.",
        "Images need alt text that describes what they show, which helps both accessibility and search.",
        "I would read the draft aloud once; awkward sentences are much easier to hear than to see.",
        "Links should point to the most useful next page, usually the docs or a relevant case study.",
        "A consistent voice across {product} pages builds more trust than any single clever line.",
        "Legal should review any comparison with competitors before it goes live.",
        "I would measure success by qualified sign-ups, not page views, and report after {days} days.",
        "Short paragraphs and clear subheadings make the piece work on mobile, where most readers are.",
    ),
    steps=("Agree on the audience and the single goal of the piece.", "Draft an outline with three to five sections.",
           "Write a first draft without editing as I go.", "Cut the draft by a third and tighten the headline.",
           "Check terminology against the style guide.", "Get a review from the product owner.",
           "Publish on {channel} and schedule the follow-ups.", "Report results after {days} days."),
    followups=("Nice. Can you make it shorter?", "What subject line would you use?",
               "How would you adapt this for {channel}?"),
    slots={
        "audience": ("IT managers", "first-time founders", "operations leads", "developers evaluating the API",
                     "finance teams"),
        "product": ("the analytics dashboard", "the workflow builder", "the mobile app", "the integrations hub"),
        "tone": ("friendly", "confident", "plain", "warm"),
        "channel": ("the newsletter", "the blog", "LinkedIn", "the product page"),
        "keyword": ("workflow automation", "customer onboarding", "data governance", "team productivity"),
    },
    kind_weights=(0.75, 0.10, 0.15),
    code_asks=("Can you give me the HTML for {topic}?", "Please write the front matter for {topic}."),
    code=(
        CodeTemplate("html", '<section class="hero">\n  <h1>Automate the busywork</h1>\n  <p>Build workflows in minutes, not sprints.</p>\n  <a class="button" href="/signup">Start free trial</a>\n</section>', "rendered"),
        CodeTemplate("markdown", "---\ntitle: How to automate customer onboarding\ndescription: A practical guide for operations teams.\ntags: [onboarding, automation]\n---", "rendered"),
    ),
    tools=(
        ToolTemplate("keyword_research", "I will check search volume for the main keyword first.",
                     lambda s: {"keyword": s["keyword"], "locale": "en-US"},
                     lambda s: {"keyword": s["keyword"], "monthly_volume": int(s["count"]) * 11, "difficulty": int(s["pct"]) % 80}),
        ToolTemplate("style_check", "Let me run the draft through the style checker.",
                     lambda s: {"document": "draft.md", "rules": "house-style"},
                     lambda s: {"issues": int(s["pct"]) % 12, "passive_voice": 3, "long_sentences": 2}),
    ),
)

GENERIC = AgentCorpus(
    system="You are the {agent} agent of a product team. You plan work, explain your reasoning and give concrete next steps.",
    categories={
        "planning": Category(
            ("the quarterly roadmap", "next sprint's priorities", "a migration plan", "the team's capacity", "a launch checklist"),
            ("A plan is only useful if it says what we will not do as clearly as what we will do.",
             "I would sequence the work so the riskiest assumption is tested first.",
             "Dependencies on other teams should be confirmed in writing before we commit dates.")),
        "research_summary": Category(
            ("recent work on {subject}", "how competitors handle {subject}", "user interviews about {subject}",
             "options for {subject}", "the state of the art in {subject}"),
            ("I would separate what the sources show from what they merely suggest.",
             "Three solid sources beat ten weak ones, so I would weight them by quality.",
             "A one-page summary with links lets readers go deeper only where they need to.")),
        "how_to_guide": Category(
            ("setting up {subject}", "onboarding a new teammate", "running a weekly review", "documenting {subject}",
             "handing over an ongoing project"),
            ("A guide should start from the reader's goal and list prerequisites up front.",
             "Screenshots age quickly, so I would prefer short numbered steps with exact labels.",
             "Ending with how to check success lets readers know they are done.")),
        "troubleshooting": Category(
            ("a recurring failure in {subject}", "slow response times", "a broken integration", "missed deadlines",
             "conflicting requirements"),
            ("Reproducing the problem reliably is half of the fix.", "Changing one variable at a time keeps the cause visible.",
             "A short timeline of what happened and when often reveals the trigger.")),
        "review_feedback": Category(
            ("a design document", "a proposal from another team", "last month's results", "a draft policy",
             "the onboarding material"),
            ("Good feedback is specific, names the impact and suggests an alternative.",
             "I would separate must-fix issues from suggestions so the author can prioritise.",
             "Praise what works as well, because it tells the author what to keep.")),
    },
    asks=("Can you help me with {topic}?", "What is your take on {topic}?", "How should we approach {topic}?",
          "I need a plan for {topic}."),
    details=("The current version is {version}.", "The deadline is {date}.", "The budget is {price}.",
             "About {count} people are affected.", "The internal service runs on {ip}.",
             "The request references order {order}."),
    sentences=(
        "For {subject}, I would start from the outcome we need and work backwards.",
        "The main constraint is time, so the plan should deliver something useful within {days} days.",
        "I would involve {stakeholder} early, since their input changes the scope.",
        "Measuring progress weekly keeps the work honest and surfaces problems early.",
        "Where the requirements conflict, I would ask {stakeholder} to decide rather than guess.",
        "A written summary after each milestone helps everyone stay aligned.",
        "I would reuse what already exists before building anything new.",
        "The risk I see is that {subject} grows in scope, so the boundaries need to be explicit.",
        "About {pct}% of the effort will go into the last details, and the plan should budget for that.",
        "I would keep a short list of open questions and review it at every check-in.",
        "Feedback from {stakeholder} after the first draft will tell us whether we are on track.",
        "Automation is worth it only for tasks we repeat often; the rest can stay manual.",
    ),
    steps=("Clarify the goal and the success measure.", "List constraints and open questions.",
           "Draft a first version and share it with {stakeholder}.", "Incorporate feedback and finalise.",
           "Track progress weekly.", "Review the outcome after {days} days."),
    followups=("Thanks. What would you do first?", "What could go wrong?", "Can we do it in {days} days?"),
    slots={
        "subject": ("the reporting pipeline", "internal documentation", "the customer portal", "vendor management",
                    "team rituals"),
        "stakeholder": ("the product owner", "the engineering lead", "finance", "the customer advisory board"),
    },
    kind_weights=(0.70, 0.15, 0.15),
    code_asks=("Can you show me a small script for {topic}?",),
    code=(
        CodeTemplate("python", 'from pathlib import Path\n\nfor path in sorted(Path("notes").glob("*.md")):\n    lines = path.read_text(encoding="utf-8").splitlines()\n    todo = [line for line in lines if line.startswith("- [ ]")]\n    print(path.name, len(todo))', "planning.md 4\nreview.md 1"),
    ),
    tools=(
        ToolTemplate("search_docs", "Let me search the internal docs first.",
                     lambda s: {"query": s["subject"], "limit": 5},
                     lambda s: {"results": 3, "most_recent": s["date"]}),
    ),
)

AGENTS: dict[str, AgentCorpus] = {
    "qa": _QA,
    "support": _SUPPORT,
    "legal": _LEGAL,
    "analyst": _ANALYST,
    "content": _CONTENT,
}


def corpus_for(agent: str) -> AgentCorpus:
    """The corpus of a known agent, or the generic one for any other name."""
    return AGENTS.get(agent, GENERIC)
