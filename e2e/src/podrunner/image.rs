/// The parts of an image reference the runner cares about: `registry.example/team/serin-testapp:v2`
/// is repository `serin-testapp`, tag `v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> ImageRef {
        let without_digest = image.split('@').next().unwrap_or(image);
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let (repository, tag) = match last.split_once(':') {
            Some((repository, tag)) => (repository, tag),
            None => (last, "latest"),
        };
        ImageRef { repository: repository.to_string(), tag: tag.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn parses_repository_and_tag() {
        let cases = [
            ("serin-testapp:v1", "serin-testapp", "v1"),
            ("serin-testapp", "serin-testapp", "latest"),
            ("registry.local:5000/team/serin-meshproxy:0.1.0", "serin-meshproxy", "0.1.0"),
            ("ghcr.io/x/serin-controller@sha256:abc", "serin-controller", "latest"),
        ];
        for (image, repository, tag) in cases {
            assert_eq!(ImageRef::parse(image), ImageRef { repository: repository.into(), tag: tag.into() }, "{image}");
        }
    }
}
