# Reference values for tests/test_course.py, made with R's lme4 / performance.
# Run from the repository root:  Rscript tests/reference/course_lme4.R
# Writes tests/reference/course_lme4.json. R is a tool for making test data only.
suppressPackageStartupMessages({
  library(lme4)
  library(performance)
  library(jsonlite)
})
data_dir <- "src/multilevel/datasets/data"
out <- list()

anova_table <- function(...) {
  a <- anova(...)  # refits REML fits by ML, orders by npar, as lme4 does
  list(models = rownames(a), npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik,
       deviance = a$deviance, Chisq = a$Chisq, Df = a$Df, p_value = a$`Pr(>Chisq)`)
}
fixef_table <- function(m) {
  s <- summary(m)$coefficients
  list(terms = rownames(s), estimate = unname(s[, 1]), std_error = unname(s[, 2]),
       vcov = unname(as.matrix(vcov(m))))
}
varcomp <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(grp = vc$grp, var1 = ifelse(is.na(vc$var1), "", vc$var1),
       var2 = ifelse(is.na(vc$var2), "", vc$var2), vcov = vc$vcov, sdcor = vc$sdcor)
}
ols <- function(m) {
  s <- summary(m)$coefficients
  list(terms = rownames(s), estimate = unname(s[, 1]), std_error = unname(s[, 2]))
}
first <- function(o, n) lapply(o, function(v) v[seq_len(n)])  # drop the school dummies

## sleepstudy: correlated vs uncorrelated slopes (and a random intercept), anova() by ML
sleep <- read.csv(file.path(data_dir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
s_int <- lmer(Reaction ~ Days + (1 | Subject), sleep)
s_unc <- lmer(Reaction ~ Days + (Days || Subject), sleep)
s_cor <- lmer(Reaction ~ Days + (Days | Subject), sleep)
out$sleepstudy_anova <- c(
  list(formulas = c("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days || Subject)",
                    "Reaction ~ Days + (Days | Subject)")),
  anova_table(s_int, s_unc, s_cor))

## Hsb82: empty, contextual (group mean + within deviation of ses), random slope, cross-level
hsb <- read.csv(file.path(data_dir, "Hsb82.csv"))
hsb$sector <- factor(hsb$sector, levels = c("Public", "Catholic"))
hsb$school <- factor(hsb$school)
hsb$ses_between <- ave(hsb$ses, hsb$school)
hsb$ses_within <- hsb$ses - hsb$ses_between
h0 <- lmer(mAch ~ 1 + (1 | school), hsb)
h1 <- lmer(mAch ~ ses_between + ses_within + (1 | school), hsb)
h2 <- lmer(mAch ~ ses_between + ses_within + (1 + ses_within | school), hsb)
h3 <- lmer(mAch ~ ses_between + ses_within + sector + ses_within:sector +
             (1 + ses_within | school), hsb)
forms <- c("mAch ~ 1 + (1 | school)", "mAch ~ ses_between + ses_within + (1 | school)",
           "mAch ~ ses_between + ses_within + (1 + ses_within | school)",
           "mAch ~ ses_between + ses_within + sector + ses_within:sector + (1 + ses_within | school)")
out$hsb82_anova <- c(list(formulas = forms), anova_table(h0, h1, h2, h3))
reml <- list(h0 = h0, h1 = h1, h2 = h2, h3 = h3)
out$hsb82_reml <- lapply(seq_along(reml), function(i) {
  m <- reml[[i]]
  r2 <- performance::r2_nakagawa(m)
  list(formula = forms[i], fixef = fixef_table(m), varcorr = varcomp(m),
       logLik_REML = as.numeric(logLik(m)),
       r2_marginal = unname(r2$R2_marginal), r2_conditional = unname(r2$R2_conditional))
})
names(out$hsb82_reml) <- names(reml)

# Snijders-Bosker R^2 (h1 against the empty model h0), from lme4's REML variance components
nj <- as.vector(table(hsb$school))
n_harm <- length(nj) / sum(1 / nj)
n_mean <- mean(nj)
vc0 <- as.data.frame(VarCorr(h0)); vc1 <- as.data.frame(VarCorr(h1))
s2_0 <- vc0$vcov[2]; t2_0 <- vc0$vcov[1]; s2_1 <- vc1$vcov[2]; t2_1 <- vc1$vcov[1]
out$hsb82_snijders_bosker <- list(
  n_harmonic = n_harm, n_mean = n_mean,
  R1 = 1 - (s2_1 + t2_1) / (s2_0 + t2_0),
  R2_harmonic = 1 - (s2_1 / n_harm + t2_1) / (s2_0 / n_harm + t2_0),
  R2_mean = 1 - (s2_1 / n_mean + t2_1) / (s2_0 / n_mean + t2_0),
  pre_residual = (s2_0 - s2_1) / s2_0, pre_school = (t2_0 - t2_1) / t2_0)

# One-way ANOVA ICC of mAch by school (Snijders & Bosker, eq. 3.11-3.12)
a <- anova(lm(mAch ~ school, hsb))
msb <- a$`Mean Sq`[1]; msw <- a$`Mean Sq`[2]
N <- nrow(hsb); J <- length(nj)
n_tilde <- (N - sum(nj^2) / N) / (J - 1)
out$hsb82_icc_anova <- list(N = N, J = J, n_tilde = n_tilde, msb = msb, msw = msw,
                            tau2 = (msb - msw) / n_tilde, icc = (msb - msw) / (msb + (n_tilde - 1) * msw),
                            F = a$`F value`[1], p_value = a$`Pr(>F)`[1], icc_reml = unname(icc(h0)$ICC_adjusted))

# Within / between / contextual regressions of mAch on ses
agg <- aggregate(cbind(mAch, ses) ~ school, hsb, mean)
out$hsb82_within_between <- list(
  total = ols(lm(mAch ~ ses, hsb)),
  between = ols(lm(mAch ~ ses, agg)),
  within = first(ols(lm(mAch ~ ses + school, hsb)), 2),  # fixed-effects (LSDV) regression
  contextual = ols(lm(mAch ~ ses_between + ses_within, hsb)),
  contextual_raw = ols(lm(mAch ~ ses_between + ses, hsb)))

# Comparative and diagnostic standard errors of the empty model's school effects
re <- ranef(h0, condVar = TRUE)
cv <- as.vector(attr(re$school, "postVar"))
out$hsb82_group_errors <- list(level = rownames(re$school), mode = re$school[, 1],
                               comparative_sd = sqrt(cv), diagnostic_sd = sqrt(t2_0 - cv),
                               tau2 = t2_0)

## The course's artificial example: 5 groups of 2
course <- read.csv(file.path(data_dir, "course_example.csv"))
course$xbar <- ave(course$x, course$group); course$ybar <- ave(course$y, course$group)
cagg <- aggregate(cbind(y, x) ~ group, course, mean)
out$course_within_between <- list(
  total = ols(lm(y ~ x, course)), between = ols(lm(y ~ x, cagg)),
  within = first(ols(lm(y ~ x + factor(group), course)), 2),
  contextual = ols(lm(y ~ xbar + I(x - xbar), course)),
  contextual_raw = ols(lm(y ~ xbar + x, course)))
cm <- suppressWarnings(lmer(y ~ x + (1 | group), course))
out$course_lmer_note <- list(
  formula = "y ~ x + (1 | group)", sigma = sigma(cm),
  messages = c(cm@optinfo$conv$lme4$messages, unlist(cm@optinfo$warnings)),
  note = "lme4 returns a fit with sigma near 0 (the data fit exactly); no estimate is meaningful")

out$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     performance = as.character(packageVersion("performance")),
                     generated = format(Sys.time(), tz = "UTC", usetz = TRUE))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/reference/course_lme4.json")
