//! The two agents (seed 002): `dashboard` and `course`, each with its
//! system prompt shaped by the user's AI style. Their tools are listed in
//! [`crate::backend::BackendConfig`].

use confab_models::AgentKind;

use crate::backend::{AiStyle, UserSettings};

/// The dashboard agent's role.
const DASHBOARD: &str = "You are confab, the learning assistant on the user's dashboard. \
Help the user find their way across the learning tracks, tell them where they stand and what to study next, \
and answer general questions. Look tracks and progress up with your tools instead of guessing, \
and ground factual answers in the knowledge base when it has something relevant.";

/// The course agent's role; `{course}` is replaced by the course id.
const COURSE: &str = "You are confab, a tutor for the course `{course}`. \
Answer questions about this course using its lessons and materials, which your tools search and open. \
Stay within the course; when its materials do not cover a question, say so before answering from general knowledge.";

/// How each style shapes answers.
fn style_line(style: AiStyle) -> &'static str {
    match style {
        AiStyle::Balanced => "Answer clearly, with as much detail as the question needs.",
        AiStyle::Concise => "Be concise: answer in a few sentences, no preamble.",
        AiStyle::Detailed => {
            "Be thorough: explain step by step, with examples, and end with a short summary."
        }
        AiStyle::Socratic => {
            "Teach the Socratic way: guide the user with questions and hints so they find the answer themselves; \
give the full answer only when they ask for it."
        }
    }
}

/// The system prompt of `agent` for a user with `settings`.
pub fn system_prompt(agent: AgentKind, course_id: Option<&str>, settings: &UserSettings) -> String {
    let role = match agent {
        AgentKind::Dashboard => DASHBOARD.to_owned(),
        AgentKind::Course => COURSE.replace("{course}", course_id.unwrap_or("unknown")),
    };
    format!(
        "{role}\n{}\nCite sources as [n] when you use them.",
        style_line(settings.ai_style)
    )
}
