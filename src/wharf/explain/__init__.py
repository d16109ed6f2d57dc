"""Explanations of a predictor's predictions, served as a model of their own (`wharf.explain.model.Explainer`).

Methods: SHAP on trees (`shap_tree`: exact, from the predictor's own artifact), SHAP on any model (`shap_kernel`:
model-agnostic, calling the predictor), adversarial examples (`adversarial`: ART's black-box attacks, calling the
predictor). `settings` reads which one, `background` the data SHAP compares with, `predictor` calls the predictor,
`features` reads the rows asked about, `attribution` shapes SHAP's answers.
"""
